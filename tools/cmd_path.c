/* SPDX-License-Identifier: MIT */
/* devmig path: the arcs the state machine takes from one state to another. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "devmig/migration.h"

static int parse_caps(const char *list, uint64_t *caps)
{
	char buf[128];
	*caps = 0;
	if (strlen(list) >= sizeof(buf))
		return -1;
	strcpy(buf, list);
	for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok;
	     tok = strtok_r(NULL, ",", &save)) {
		if (!strcmp(tok, "stop_copy"))
			*caps |= DEVMIG_MIG_STOP_COPY;
		else if (!strcmp(tok, "p2p"))
			*caps |= DEVMIG_MIG_P2P;
		else if (!strcmp(tok, "pre_copy"))
			*caps |= DEVMIG_MIG_PRE_COPY;
		else
			return -1;
	}
	return 0;
}

static void path_usage(FILE *f)
{
	fprintf(f, "usage: devmig path FROM TO [--caps LIST]\n"
		   "\n"
		   "Print the arcs the state machine takes from state FROM to state TO (STOP,\n"
		   "RUNNING, STOP_COPY, RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P) for a\n"
		   "device with the capabilities in LIST (comma-separated of stop_copy, p2p,\n"
		   "pre_copy; default all), and where a data session opens or ends.\n");
}

struct path_opts {
	enum devmig_state from, to;
	uint64_t caps;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int path_parse(int argc, char **argv, struct path_opts *p)
{
	p->caps = DEVMIG_MIG_ALL;
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		path_usage(stdout);
		return -1;
	}
	if (argc < 3 || !devmig_state_parse(argv[1], &p->from) ||
	    !devmig_state_parse(argv[2], &p->to)) {
		fprintf(stderr, "devmig path: need two state names (STOP, RUNNING, STOP_COPY, "
				"RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P)\n");
		return 2;
	}
	if (argc == 5 && !strcmp(argv[3], "--caps")) {
		if (parse_caps(argv[4], &p->caps)) {
			fprintf(stderr, "devmig path: --caps takes stop_copy,p2p,pre_copy\n");
			return 2;
		}
	} else if (argc != 3) {
		path_usage(stderr);
		return 2;
	}
	return 0;
}

static void path_print(const struct path_opts *p, const enum devmig_state *path, size_t n)
{
	static const char *const effect[] = {
		[DEVMIG_ARC_KEEP] = "",
		[DEVMIG_ARC_OPEN_SAVE] = " [opens save session]",
		[DEVMIG_ARC_OPEN_LOAD] = " [opens load session]",
		[DEVMIG_ARC_END] = " [ends session]",
	};
	enum devmig_state at = p->from;

	printf("%s -> %s: %s", devmig_state_name(p->from), devmig_state_name(p->to),
	       devmig_state_name(p->from));
	for (size_t i = 0; i < n; i++) {
		printf(" -> %s%s", devmig_state_name(path[i]), effect[devmig_arc_session(at, path[i])]);
		at = path[i];
	}
	printf("\n");
}

int devmig_cmd_path(int argc, char **argv)
{
	struct path_opts p;
	enum devmig_state path[DEVMIG_FSM_MAX_PATH];
	size_t n;
	int rc = path_parse(argc, argv, &p);

	if (rc)
		return rc < 0 ? 0 : rc;
	enum devmig_fsm_err err = devmig_fsm_path(p.from, p.to, p.caps, path, &n);
	if (err) {
		printf("%s -> %s: refused: %s\n", devmig_state_name(p.from), devmig_state_name(p.to),
		       devmig_fsm_strerror(err));
		return 1;
	}
	path_print(&p, path, n);
	return 0;
}
