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
#include "cli_util.h"

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

int devmig_cmd_restore(int argc, char **argv)
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
	char *dst[CLI_MAX_DEVICES];
	unsigned ndst = 0;
	const char *path = NULL;
	bool json = false, verbose = false;
	int o;

	while ((o = getopt_long(argc, argv, "s:V:f:jvh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (!cli_add_device("restore", dst, &ndst, optarg, o == 'V'))
				return 2;
			break;
		case 'f':
			if (path) {
				fprintf(stderr, "devmig restore: give one --file\n");
				return 2;
			}
			path = optarg;
			break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h': restore_usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig restore: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!ndst || !path) {
		fprintf(stderr, "devmig restore: --socket or --vfio, and --file, are required "
				"(devmig restore --help)\n");
		return 2;
	}

	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fprintf(stderr, "devmig restore: cannot open %s: %s\n", path, strerror(errno));
		return 1;
	}
	struct stat st;
	if (fstat(fd, &st) || !S_ISREG(st.st_mode)) {
		fprintf(stderr, "devmig restore: %s is not a regular file (a checkpoint is read "
				"twice: checked, then loaded)\n", path);
		close(fd);
		return 1;
	}
	struct devmig_client **dc = cli_connect_all("restore", dst, ndst);
	if (!dc) {
		close(fd);
		return 1;
	}

	struct cli_progress prog;
	cli_progress_init(&prog, verbose);
	prog.dst = dst;
	prog.ndst = ndst;
	struct devmig_engine_config cfg = { .event = cli_progress_event, .opaque = &prog };
	struct devmig_migration_report rep;
	int rc = devmig_restore(&cfg, fd, dc, ndst, NULL, &rep);
	cli_progress_end(&prog);
	close(fd);
	cli_close_all(dc, ndst);
	if (rc && !rep.error[0])
		snprintf(rep.error, sizeof(rep.error), "the restore failed: %s", strerror(-rc));

	if (rc) {
		/* The error alone may not say it is about the file: name it. */
		char msg[sizeof(rep.error) + 300];
		cli_note_states(&rep, 0, ndst);
		snprintf(msg, sizeof(msg), "%s: %s", path, rep.error);
		cli_print_error("restore", msg, NULL, 0, dst, ndst);
	}
	if (json) {
		json_object *j = cli_report_json(&rep, rc == 0, 0, ndst);
		json_object_object_add(j, "file", json_object_new_string(path));
		cli_print_json(j);
	} else if (!rc) {
		char b1[32], b2[32];
		printf("restored %u device%s from %s (%s of device state); they run now\n",
		       rep.devices, rep.devices == 1 ? "" : "s", path,
		       cli_bytes((double)rep.device_bytes, b1, sizeof(b1)));
		printf("  total time  %s\n", cli_duration(rep.total_ns, b2, sizeof(b2)));
	}
	return rc ? 1 : 0;
}
