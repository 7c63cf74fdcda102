/* SPDX-License-Identifier: MIT */
/* devmig restore: load a checkpoint written by devmig save into devices. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "cli_progress.h"
#include "cli_report.h"

static void restore_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig restore (--socket DST | --vfio DST) [...] --file PATH [--json]\n"
		"                      [--verbose]\n"
		"\n"
		"Load the checkpoint at PATH (from 'devmig save') into the DST devices, in the\n"
		"order they were saved; they run with that state once it\n"
		"succeeds. Every frame of the file is checked before any device is touched: a\n"
		"damaged or truncated file is refused and the devices keep their own state.\n"
		"A device that is not the one saved (by version, or by its PCI identity when\n"
		"either lacks devmig's compat extension) is refused before any state moves.\n"
		"Device state only: no guest memory is restored. On failure the error ends\n"
		"with the state each device was left in.\n"
		"\n"
		"  --socket DST  a device's vfio-user socket (repeat)\n"
		"  --vfio DST    a kernel VFIO device (PCI address, mdev UUID, sysfs path,\n"
		"                /dev/vfio/devices/vfioN; repeat)\n"
		"  --file PATH   the checkpoint\n"
		"  --json        print the report as JSON\n"
		"  --verbose     print every state change requested\n");
}

/* What the command line asked for. */
struct restore_opts {
	char *dst[CLI_MAX_DEVICES];
	unsigned ndst;
	const char *path;
	bool json, verbose;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int restore_parse(int argc, char **argv, struct restore_opts *r)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "file", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	memset(r, 0, sizeof(*r));
	while ((o = getopt_long(argc, argv, "s:V:f:jvh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (!cli_add_device("restore", r->dst, &r->ndst, optarg, o == 'V'))
				return 2;
			break;
		case 'f':
			if (r->path) {
				fprintf(stderr, "devmig restore: give one --file\n");
				return 2;
			}
			r->path = optarg;
			break;
		case 'j': r->json = true; break;
		case 'v': r->verbose = true; break;
		case 'h': restore_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("restore", argc, argv))
		return 2;
	if (!r->ndst || !r->path) {
		fprintf(stderr, "devmig restore: --socket or --vfio, and --file, are required "
				"(devmig restore --help)\n");
		return 2;
	}
	return 0;
}

/*
 * Load the checkpoint into the devices. The engine's result; rep says what
 * happened. *started false: nothing began (said), the exit status returned.
 */
static int restore_run(const struct restore_opts *r, struct devmig_migration_report *rep,
		       bool *started)
{
	*started = false;
	int fd = open(r->path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "devmig restore: cannot open %s: %s\n", r->path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "devmig restore: %s is not a regular file (a checkpoint is read "
				"twice: checked, then loaded)\n", r->path);
		close(fd);
		return 1;
	}
	struct devmig_client **dc = cli_connect_all("restore", r->dst, r->ndst,
						    CLI_TIMEOUT_DEFAULT);
	if (!dc) {
		close(fd);
		return 1;
	}

	struct cli_progress prog;
	cli_progress_init(&prog, r->verbose, NULL, 0, r->dst, r->ndst);
	struct devmig_engine_config cfg = { .event = cli_progress_event, .opaque = &prog };
	*started = true;
	int rc = devmig_restore(&cfg, fd, dc, r->ndst, NULL, rep);
	cli_progress_end(&prog);
	close(fd);
	cli_close_all(dc, r->ndst);
	if (rc && !rep->error[0])
		snprintf(rep->error, sizeof(rep->error), "the restore failed: %s", strerror(-rc));
	if (rc)
		cli_note_states(rep, 0, r->ndst);
	return rc;
}

static void restore_print(const struct restore_opts *r, const struct devmig_migration_report *rep,
			  int rc)
{
	if (rc) {
		/* The error alone may not say it is about the file: name it. */
		char msg[sizeof(rep->error) + 300];
		snprintf(msg, sizeof(msg), "%s: %s", r->path, rep->error);
		cli_print_error("restore", msg, NULL, 0, r->dst, r->ndst);
	}
	if (r->json) {
		json_object *j = cli_report_json(rep, rc == 0, 0, r->ndst);
		json_object_object_add(j, "file", json_object_new_string(r->path));
		cli_print_json(j);
	} else if (!rc) {
		char b1[32], b2[32];
		printf("restored %u device%s from %s (%s of device state); they run now\n",
		       rep->devices, rep->devices == 1 ? "" : "s", r->path,
		       cli_bytes((double)rep->device_bytes, b1, sizeof(b1)));
		printf("  total time  %s\n", cli_duration(rep->total_ns, b2, sizeof(b2)));
	}
}

int devmig_cmd_restore(int argc, char **argv)
{
	struct restore_opts r;
	struct devmig_migration_report rep;
	bool started;
	int rc = restore_parse(argc, argv, &r);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = restore_run(&r, &rep, &started);
	if (!started)
		return rc;
	restore_print(&r, &rep, rc);
	return rc ? 1 : 0;
}
