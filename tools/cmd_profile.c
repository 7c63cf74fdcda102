/* SPDX-License-Identifier: MIT */
/* devmig profile: dump a served device's config space as a profile, or check one. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "devmig/client.h"
#include "devmig/profile.h"

/* VFIO_PCI_CONFIG_REGION_INDEX: PCI configuration space. */
#define CONFIG_REGION 7u

static void profile_usage(FILE *f)
{
	fprintf(f, "usage: devmig profile --dump (--socket PATH | --vfio DEVICE) [--output FILE]\n"
		   "       devmig profile --check FILE\n"
		   "\n"
		   "--dump opens the device, reads its PCI config\n"
		   "space and BAR sizes and writes them as a profile (JSON, see\n"
		   "include/devmig/profile.h) to FILE or stdout: a starting point for a profile\n"
		   "that devices with different native layouts share ('devmig serve --profile').\n"
		   "The device is not changed.\n"
		   "--check validates the profile in FILE and prints every mistake, one per line;\n"
		   "the exit status is 0 when it is valid, 1 when not.\n"
		   "\n"
		   "  --socket PATH  the device's vfio-user socket\n"
		   "  --vfio DEVICE  a kernel VFIO device (PCI address, mdev UUID, sysfs path,\n"
		   "                 /dev/vfio/devices/vfioN)\n"
		   "  --output FILE  where to write the dump (default: stdout)\n");
}

/* What the command line asked for: --check FILE, or --dump of path. */
struct profile_opts {
	char *path, *output, *check;
};

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int profile_parse(int argc, char **argv, struct profile_opts *po)
{
	static const struct option opts[] = {
		{ "dump", no_argument, NULL, 'd' },
		{ "check", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool dump = false;
	int o;

	memset(po, 0, sizeof(*po));
	while ((o = getopt_long(argc, argv, "dc:s:V:o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dump = true; break;
		case 'c': po->check = optarg; break;
		case 's': po->path = optarg; break;
		case 'V':
			po->path = (char *)cli_vfio_arg("profile", optarg);
			if (!po->path)
				return 2;
			break;
		case 'o': po->output = optarg; break;
		case 'h': profile_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("profile", argc, argv))
		return 2;
	if (dump == !!po->check) {
		fprintf(stderr, "devmig profile: give --dump or --check (devmig profile --help)\n");
		return 2;
	}
	if (po->check && (po->path || po->output)) {
		fprintf(stderr, "devmig profile: --check takes no --socket, --vfio or --output\n");
		return 2;
	}
	if (dump && !po->path) {
		fprintf(stderr, "devmig profile: --dump needs --socket or --vfio (devmig profile "
				"--help)\n");
		return 2;
	}
	return 0;
}

/* --check: every mistake, one per line. */
static int check_run_print(const char *file)
{
	static char err[64 * 1024];
	struct devmig_profile *p = devmig_profile_load(file, err, sizeof(err));

	if (p) {
		devmig_profile_free(p);
		printf("%s: valid\n", file);
		return 0;
	}
	for (char *save = NULL, *line = strtok_r(err, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save))
		printf("%s: %s\n", file, line);
	return 1;
}

/* --dump: the device's config space and BAR sizes; 0, or 1 (said). */
static int dump_run(char *path, uint8_t *cfg, size_t cfg_len, uint64_t *sizes)
{
	struct devmig_client **cl = cli_connect_all("profile", &path, 1, CLI_TIMEOUT_DEFAULT);

	if (!cl)
		return 1;
	/* Config space is 256 or 4096 bytes (an emulated device may have less):
	 * what the device has, the rest zero. */
	struct devmig_region_info cri = { 0 };
	int cfd = -1;
	unsigned cn = 0;
	uint64_t clen = cfg_len;
	memset(cfg, 0, cfg_len);
	int rc = devmig_client_region_info(cl[0], CONFIG_REGION, &cri, &cfd, NULL, &cn);
	if (cfd >= 0)
		close(cfd);
	if (!rc && cri.size && cri.size < clen)
		clen = cri.size;
	if (!rc)
		rc = devmig_client_region_read(cl[0], CONFIG_REGION, 0, cfg, (size_t)clen);
	if (rc) {
		fprintf(stderr, "devmig profile: %s: reading the PCI config space failed: %s\n", path,
			strerror(-rc));
		cli_close_all(cl, 1);
		return 1;
	}
	for (uint32_t bar = 0; bar < 6; bar++) {
		struct devmig_region_info ri = { 0 };
		unsigned nareas = 0;
		int fd = -1;
		rc = devmig_client_region_info(cl[0], bar, &ri, &fd, NULL, &nareas);
		if (fd >= 0)
			close(fd);
		if (rc) {
			fprintf(stderr, "devmig profile: %s: region %u info failed: %s\n", path, bar,
				strerror(-rc));
			cli_close_all(cl, 1);
			return 1;
		}
		sizes[bar] = ri.size;
	}
	cli_close_all(cl, 1);
	return 0;
}

/* The dump as a profile, to output or stdout. */
static int dump_print(const char *path, const char *output, const uint8_t *cfg,
		      const uint64_t *sizes)
{
	char err[256] = "";
	char *text = devmig_profile_dump(cfg, sizes, err, sizeof(err));

	if (!text) {
		fprintf(stderr, "devmig profile: %s: %s\n", path, err);
		return 1;
	}
	FILE *f = output ? fopen(output, "w") : stdout;
	if (!f) {
		fprintf(stderr, "devmig profile: %s: %s\n", output, strerror(errno));
		free(text);
		return 1;
	}
	bool bad = fputs(text, f) == EOF;
	bad |= output ? fclose(f) != 0 : fflush(f) != 0;
	free(text);
	if (bad) {
		fprintf(stderr, "devmig profile: writing %s failed\n", output ? output : "stdout");
		return 1;
	}
	return 0;
}

int devmig_cmd_profile(int argc, char **argv)
{
	struct profile_opts po;
	uint8_t cfg[4096];
	uint64_t sizes[6] = { 0 };
	int rc = profile_parse(argc, argv, &po);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (po.check)
		return check_run_print(po.check);
	rc = dump_run(po.path, cfg, sizeof(cfg), sizes);
	return rc ? rc : dump_print(po.path, po.output, cfg, sizes);
}
