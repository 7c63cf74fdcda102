/* SPDX-License-Identifier: MIT */
/* devmig: the command-line tool. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "devices.h"
#include "devmig/migration.h"
#include "devmig/profile.h"
#include "devmig/server.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: devmig <command> [options]\n"
		"\n"
		"commands:\n"
		"  serve --device NAME|PATH.so --socket PATH [--args OPTS] [--profile FILE]\n"
		"        [--allow-other-uids] [--verbose]\n"
		"                              serve a device variant over vfio-user until SIGINT/SIGTERM\n"
		"                              (a path with '/': an out-of-tree variant's shared object;\n"
		"                              --profile: config space synthesized from a profile)\n"
		"  devices                     list the device variants\n"
		"  info (--socket PATH | --vfio DEVICE) [--json]\n"
		"                              a device's identity, migration capabilities and state\n"
		"  region read|write ...       read or write a device region (devmig region --help)\n"
		"  migrate ...                 live-migrate devices (devmig migrate --help)\n"
		"  receive ...                 the destination of a two-host migration\n"
		"  save ... / restore ...      checkpoint devices to a file and back\n"
		"  resume --socket PATH ...    devices a failed migration left stopped: back to RUNNING\n"
		"  reset --socket PATH ...     reset devices (a destination left mid-load); state is lost\n"
		"  keygen --psk FILE           a pre-shared key for TLS between hosts\n"
		"  demo                        migrate a running memblk device under load and verify it\n"
		"  compat ...                  can a target take a source's state? one pair or a fleet\n"
		"  profile --dump (--socket PATH | --vfio DEVICE) [--output FILE] | --check FILE\n"
		"                              a device's config space as a profile; validate a profile\n"
		"  check --socket A [--socket B] [--json]\n"
		"                              test a device's migration driver against the protocol\n"
		"                              (B: a second fresh instance for the round trips)\n"
		"  path FROM TO [--caps LIST]  print the arcs the state machine takes from FROM to TO\n"
		"                              (LIST: comma-separated of stop_copy,p2p,pre_copy; default all)\n"
		"  help                        this text\n"
		"\n"
		"\n"
		"A device is a vfio-user socket (--socket PATH) or a kernel VFIO device (--vfio\n"
		"DEVICE: a PCI address, an mdev UUID, a sysfs path or /dev/vfio/devices/vfioN),\n"
		"wherever a command takes one; --to-vfio for migrate's local destinations,\n"
		"vfio:DEVICE for compat's --source and --target.\n"
		"'devmig COMMAND --help' describes each command.\n");
}

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

static int print_path(uint32_t from, uint32_t to, uint64_t caps)
{
	enum devmig_state path[DEVMIG_FSM_MAX_PATH];
	size_t n;
	enum devmig_fsm_err err = devmig_fsm_path(from, to, caps, path, &n);

	printf("%s -> %s:", devmig_state_name(from), devmig_state_name(to));
	if (err) {
		printf(" refused: %s\n", devmig_fsm_strerror(err));
		return 1;
	}
	uint32_t at = from;
	printf(" %s", devmig_state_name(from));
	for (size_t i = 0; i < n; i++) {
		static const char *const effect[] = {
			[DEVMIG_ARC_KEEP] = "",
			[DEVMIG_ARC_OPEN_SAVE] = " [opens save session]",
			[DEVMIG_ARC_OPEN_LOAD] = " [opens load session]",
			[DEVMIG_ARC_END] = " [ends session]",
		};
		printf(" -> %s%s", devmig_state_name(path[i]), effect[devmig_arc_session(at, path[i])]);
		at = path[i];
	}
	printf("\n");
	return 0;
}

int devmig_cmd_path(int argc, char **argv)
{
	enum devmig_state from, to;
	uint64_t caps = DEVMIG_MIG_ALL;

	if (argc < 3 || !devmig_state_parse(argv[1], &from) || !devmig_state_parse(argv[2], &to)) {
		fprintf(stderr, "devmig path: need two state names (STOP, RUNNING, STOP_COPY, "
				"RESUMING, RUNNING_P2P, PRE_COPY, PRE_COPY_P2P)\n");
		return 2;
	}
	if (argc == 5 && !strcmp(argv[3], "--caps")) {
		if (parse_caps(argv[4], &caps)) {
			fprintf(stderr, "devmig path: --caps takes stop_copy,p2p,pre_copy\n");
			return 2;
		}
	} else if (argc != 3) {
		usage(stderr);
		return 2;
	}
	return print_path(from, to, caps);
}


int devmig_cmd_devices(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	for (size_t i = 0; devmig_variants[i]; i++)
		printf("%-10s %s\n", devmig_variants[i]->name, devmig_variants[i]->summary);
	return 0;
}

int devmig_cmd_serve(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "device", required_argument, NULL, 'd' },
		{ "socket", required_argument, NULL, 's' },
		{ "args", required_argument, NULL, 'a' },
		{ "profile", required_argument, NULL, 'p' },
		{ "allow-other-uids", no_argument, NULL, 'u' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *name = NULL, *args = NULL, *profile = NULL;
	struct devmig_server_config cfg = { 0 };
	int o;

	while ((o = getopt_long(argc, argv, "d:s:a:p:uvh", opts, NULL)) != -1) {
		switch (o) {
		case 'd': name = optarg; break;
		case 's': cfg.socket_path = optarg; break;
		case 'a': args = optarg; break;
		case 'p': profile = optarg; break;
		case 'u': cfg.allow_other_uids = true; break;
		case 'v': cfg.verbose = true; break;
		case 'h':
			printf("usage: devmig serve --device NAME|PATH.so --socket PATH [--args OPTS] "
			       "[--profile FILE] [--allow-other-uids] [--verbose]\n"
			       "  NAME: a variant 'devmig devices' lists; a path with '/': the shared\n"
			       "  object of an out-of-tree variant (its devmig_variant_entry()).\n");
			return 0;
		default: return 2;
		}
	}
	if (!name || !cfg.socket_path) {
		fprintf(stderr, "devmig serve: --device and --socket are required\n");
		return 2;
	}
	char err[512];
	const struct devmig_variant *v;
	if (strchr(name, '/')) {
		v = devmig_variant_open(name, err, sizeof(err));
		if (!v) {
			fprintf(stderr, "devmig serve: %s\n", err);
			return 1;
		}
	} else if (!(v = devmig_variant_find(name))) {
		fprintf(stderr, "devmig serve: no device variant '%s' (see 'devmig devices'; a "
				"shared object needs a path with '/', e.g. ./lib%s.so)\n", name, name);
		return 2;
	}
	struct devmig_device *dev = v->create(args, err, sizeof(err));
	if (!dev) {
		fprintf(stderr, "devmig serve: %s\n", err);
		return 1;
	}
	if (profile) {
		static char perr[16 * 1024];
		struct devmig_profile *p = devmig_profile_load(profile, perr, sizeof(perr));
		int prc = p ? devmig_device_set_profile(dev, p, perr, sizeof(perr)) : -1;
		devmig_profile_free(p);
		if (prc) {
			fprintf(stderr, "devmig serve: profile %s: %s\n", profile, perr);
			v->free(dev);
			return 1;
		}
	}
	/* A client that goes away is an error on its connection, never our death. */
	signal(SIGPIPE, SIG_IGN);
	/* Signals are taken synchronously by this thread; the server runs in its own. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	struct devmig_server *srv = devmig_server_new(dev, &cfg, err, sizeof(err));
	if (!srv || devmig_server_start(srv)) {
		fprintf(stderr, "devmig serve: %s\n", srv ? "cannot start the server thread" : err);
		devmig_server_free(srv);
		v->free(dev);
		return 1;
	}
	if (cfg.verbose)
		fprintf(stderr, "devmig serve: %s on %s\n", name, cfg.socket_path);
	int sig;
	sigwait(&set, &sig);
	devmig_server_free(srv);
	v->free(dev);
	return 0;
}

static const struct {
	const char *name;
	int (*run)(int argc, char **argv);
} commands[] = {
	{ "serve", devmig_cmd_serve },
	{ "info", devmig_cmd_info },
	{ "region", devmig_cmd_region },
	{ "migrate", devmig_cmd_migrate },
	{ "receive", devmig_cmd_receive },
	{ "save", devmig_cmd_save },
	{ "restore", devmig_cmd_restore },
	{ "demo", devmig_cmd_demo },
	{ "compat", devmig_cmd_compat },
	{ "profile", devmig_cmd_profile },
	{ "check", devmig_cmd_check },
	{ "devices", devmig_cmd_devices },
	{ "path", devmig_cmd_path },
	{ "resume", devmig_cmd_resume },
	{ "reset", devmig_cmd_reset },
	{ "keygen", devmig_cmd_keygen },
};

int main(int argc, char **argv)
{
	/* A peer that goes away is an error on its connection, never our death:
	 * every command (serve, demo, migrate, ...) talks to sockets. */
	signal(SIGPIPE, SIG_IGN);
	if (argc < 2) {
		usage(stderr);
		return 2;
	}
	if (!strcmp(argv[1], "help") || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		usage(stdout);
		return 0;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].run(argc - 1, argv + 1);
	fprintf(stderr, "devmig: unknown command '%s' (try 'devmig --help')\n", argv[1]);
	return 2;
}
