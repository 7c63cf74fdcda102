/* SPDX-License-Identifier: MIT */
/* devmig receive: the destination half of a two-host migration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"

static void receive_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig receive (--listen ADDR:PORT | --listen unix:PATH)\n"
		"                      (--socket DST | --vfio DST) [...] [--timeout SEC] [--json]\n"
		"                      [--verbose]\n"
		"\n"
		"Wait for ONE 'devmig migrate --to' connection and load the devices it sends\n"
		"into the DST devices (in the order of the source's devices); they run here\n"
		"once it succeeds. Device state only: no\n"
		"guest memory is received.\n"
		"\n"
		"  --listen ADDR:PORT  TCP: an IPv4 address, [IPv6], a host name, or *:PORT\n"
		"                      for every address; PORT 0 picks a free port\n"
		"  --listen unix:PATH  a unix socket (removed at the end)\n"
		"  --socket DST        a destination device's vfio-user socket (repeat)\n"
		"  --vfio DST          a destination kernel VFIO device (PCI address, mdev UUID,\n"
		"                      sysfs path, /dev/vfio/devices/vfioN; repeat)\n"
		"  --timeout SEC       once connected, give up when the source sends nothing\n"
		"                      for SEC seconds (default 120; waiting for it is not limited)\n"
		"  --json              print the report as JSON\n"
		"  --verbose           print every state change requested\n"
		"\n"
		"'listening on ADDR' goes to stderr once connections are accepted. Exit status\n"
		"0 when the devices run here, 1 when the migration failed (the destination\n"
		"devices are reset then, or walked to RUNNING where a reset is refused, and\n"
		"the error ends with the state each was left in).\n");
}

int devmig_cmd_receive(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "timeout", required_argument, NULL, 'T' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *dst[CLI_MAX_DEVICES];
	unsigned ndst = 0;
	const char *listen_at = NULL;
	bool json = false, verbose = false;
	unsigned timeout = CLI_CHANNEL_TIMEOUT;
	uint64_t v;
	int o;

	while ((o = getopt_long(argc, argv, "l:s:V:T:jvh", opts, NULL)) != -1) {
		switch (o) {
		case 'l':
			if (listen_at) {
				fprintf(stderr, "devmig receive: give one --listen\n");
				return 2;
			}
			listen_at = optarg;
			break;
		case 's':
		case 'V':
			if (!cli_add_device("receive", dst, &ndst, optarg, o == 'V'))
				return 2;
			break;
		case 'T':
			if (!cli_parse_u64(optarg, 1, 86400, &v)) {
				fprintf(stderr, "devmig receive: --timeout takes seconds, 1 to 86400, "
						"not '%s'\n", optarg);
				return 2;
			}
			timeout = (unsigned)v;
			break;
		case 'j': json = true; break;
		case 'v': verbose = true; break;
		case 'h': receive_usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig receive: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!listen_at || !ndst) {
		fprintf(stderr, "devmig receive: --listen and --socket or --vfio are required "
				"(devmig receive --help)\n");
		return 2;
	}
	struct cli_addr addr;
	char err[512];
	if (!cli_parse_addr(listen_at, true, &addr, err, sizeof(err))) {
		fprintf(stderr, "devmig receive: --listen %s\n", err);
		return 2;
	}

	cli_ignore_sigpipe();
	/* The devices first: no point in accepting a migration with nowhere to put it. */
	struct devmig_client **dc = cli_connect_all("receive", dst, ndst);
	if (!dc)
		return 1;
	char shown[300];
	int lfd = cli_listen_addr(&addr, shown, sizeof(shown), err, sizeof(err));
	if (lfd < 0) {
		fprintf(stderr, "devmig receive: %s\n", err);
		cli_close_all(dc, ndst);
		return 1;
	}
	fprintf(stderr, "devmig receive: listening on %s for one migration of %u device%s\n",
		shown, ndst, ndst == 1 ? "" : "s");

	int fd;
	do
		fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	while (fd < 0 && (errno == EINTR || errno == ECONNABORTED));
	int accept_errno = errno;
	close(lfd); /* one migration: nobody else gets in */
	if (addr.is_unix)
		unlink(addr.path);
	if (fd < 0) {
		fprintf(stderr, "devmig receive: accepting a connection on %s failed: %s\n", shown,
			strerror(accept_errno));
		cli_close_all(dc, ndst);
		return 1;
	}
	cli_tune_socket(fd);
	cli_channel_timeout(fd, timeout);

	struct cli_progress prog;
	cli_progress_init(&prog, verbose);
	prog.dst = dst;
	prog.ndst = ndst;
	struct devmig_engine_config cfg = { .event = cli_progress_event, .opaque = &prog };
	struct devmig_migration_report rep;
	int rc = devmig_receive_from_fd(&cfg, fd, dc, ndst, NULL, &rep);
	cli_progress_end(&prog);
	if (rc && !rep.error[0])
		snprintf(rep.error, sizeof(rep.error), "the migration failed: %s", strerror(-rc));
	else if (rc)
		cli_note_timeout(&rep, rc, timeout);
	close(fd);
	cli_close_all(dc, ndst);

	if (rc) {
		cli_note_states(&rep, 0, ndst);
		cli_print_error("receive", rep.error, NULL, 0, dst, ndst);
	}
	if (json) {
		json_object *j = cli_report_json(&rep, rc == 0, 0, ndst);
		json_object_object_add(j, "listen", json_object_new_string(shown));
		cli_print_json(j);
	} else if (!rc) {
		char b1[32], b2[32];
		printf("migration received: %u device%s now running here\n", rep.devices,
		       rep.devices == 1 ? "" : "s");
		printf("  received    %s of device state\n",
		       cli_bytes((double)(rep.device_bytes + rep.guest_bytes), b1, sizeof(b1)));
		printf("  total time  %s (from the connection)\n",
		       cli_duration(rep.total_ns, b2, sizeof(b2)));
	}
	return rc ? 1 : 0;
}
