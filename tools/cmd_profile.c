/* SPDX-License-Identifier: MIT */
/* devmig profile: dump a served device's config space as a profile, or check one. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cli_util.h"
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

static int do_check(const char *file)
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

static int write_out(const char *output, const char *text)
{
	FILE *f = output ? fopen(output, "w") : stdout;

	if (!f) {
		fprintf(stderr, "devmig profile: %s: %s\n", output, strerror(errno));
		return 1;
	}
	bool bad = fputs(text, f) == EOF;
	bad |= output ? fclose(f) != 0 : fflush(f) != 0;
	if (bad) {
		fprintf(stderr, "devmig profile: writing %s failed\n", output ? output : "stdout");
		return 1;
	}
	return 0;
}

static int do_dump(char *path, const char *output)
{
	struct devmig_client **cl = cli_connect_all("profile", &path, 1);
	uint8_t cfg[4096];
	uint64_t sizes[6] = { 0 };
	char err[256] = "";

	if (!cl)
		return 1;
	/* Config space is 256 or 4096 bytes (an emulated device may have less):
	 * what the device has, the rest zero. */
	struct devmig_region_info cri = { 0 };
	int cfd = -1;
	unsigned cn = 0;
	uint64_t clen = sizeof(cfg);
	memset(cfg, 0, sizeof(cfg));
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
	char *text = devmig_profile_dump(cfg, sizes, err, sizeof(err));
	if (!text) {
		fprintf(stderr, "devmig profile: %s: %s\n", path, err);
		return 1;
	}
	rc = write_out(output, text);
	free(text);
	return rc;
}

int devmig_cmd_profile(int argc, char **argv)
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
	char *path = NULL, *output = NULL, *check = NULL;
	bool dump = false;
	int o;

	while ((o = getopt_long(argc, argv, "dc:s:V:o:h", opts, NULL)) != -1) {
		switch (o) {
		case 'd': dump = true; break;
		case 'c': check = optarg; break;
		case 's': path = optarg; break;
		case 'V':
			path = (char *)cli_vfio_arg("profile", optarg);
			if (!path)
				return 2;
			break;
		case 'o': output = optarg; break;
		case 'h': profile_usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig profile: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (dump == !!check) {
		fprintf(stderr, "devmig profile: give --dump or --check (devmig profile --help)\n");
		return 2;
	}
	if (check) {
		if (path || output) {
			fprintf(stderr, "devmig profile: --check takes no --socket, --vfio or --output\n");
			return 2;
		}
		return do_check(check);
	}
	if (!path) {
		fprintf(stderr, "devmig profile: --dump needs --socket or --vfio (devmig profile "
				"--help)\n");
		return 2;
	}
	return do_dump(path, output);
}
