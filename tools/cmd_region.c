/* SPDX-License-Identifier: MIT */
/* devmig region read|write: a device region's bytes, as hex. Parse, run, print. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"

#define REGION_MAX_BYTES (1u << 20)

struct region_args {
	bool write, json;
	char *socket;
	uint32_t region;
	uint64_t offset;
	size_t count;      /* read: bytes to read; write: bytes of data */
	uint8_t *data;     /* write */
};

static void region_usage(FILE *f)
{
	fprintf(f, "usage: devmig region read --socket PATH --region N --offset O --count C [--json]\n"
		   "       devmig region write --socket PATH --region N --offset O --data HEX\n"
		   "\n"
		   "Read or write bytes of a vfio-user region of the device at PATH (0-5 the BARs,\n"
		   "7 the PCI config space) with REGION_READ/REGION_WRITE, as a VMM would. read\n"
		   "prints the bytes as hex on one line; write takes them as hex and prints\n"
		   "nothing. A device's registers decide which sizes and alignments they take.\n"
		   "\n"
		   "  --socket PATH  the device's vfio-user socket\n"
		   "  --region N     region index (0..8)\n"
		   "  --offset O     byte offset in the region (decimal or 0x...)\n"
		   "  --count C      bytes to read, 1..%u\n"
		   "  --data HEX     bytes to write, e.g. 2a000000 (1..%u bytes)\n"
		   "  --json         read: {\"region\", \"offset\", \"data\"}\n",
		REGION_MAX_BYTES, REGION_MAX_BYTES);
}

static int hex_value(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	ch |= 0x20;
	return ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
}

/* "2a00ff" -> bytes; NULL when it is not an even number of hex digits. */
static uint8_t *parse_hex(const char *s, size_t *len)
{
	size_t n = strlen(s);
	if (!n || n % 2 || n / 2 > REGION_MAX_BYTES)
		return NULL;
	uint8_t *out = malloc(n / 2);
	for (size_t i = 0; out && i < n / 2; i++) {
		int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
		if (hi < 0 || lo < 0) {
			free(out);
			return NULL;
		}
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	*len = n / 2;
	return out;
}

/* 0, or the exit status of a usage error (the message printed). */
static int region_parse(int argc, char **argv, struct region_args *a)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "region", required_argument, NULL, 'r' },
		{ "offset", required_argument, NULL, 'o' },
		{ "count", required_argument, NULL, 'c' },
		{ "data", required_argument, NULL, 'd' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	bool have_region = false, have_offset = false, have_count = false;
	const char *hex = NULL;
	uint64_t v;
	int o;

	memset(a, 0, sizeof(*a));
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		region_usage(stdout);
		return -1;
	}
	if (argc < 2 || (strcmp(argv[1], "read") && strcmp(argv[1], "write"))) {
		fprintf(stderr, "devmig region: say 'read' or 'write' (devmig region --help)\n");
		return 2;
	}
	a->write = !strcmp(argv[1], "write");
	optind = 2;
	while ((o = getopt_long(argc, argv, "s:r:o:c:d:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's': a->socket = optarg; break;
		case 'r':
			if (!cli_parse_number(optarg, 0, 8, &v)) {
				fprintf(stderr, "devmig region: --region takes 0..8, not '%s'\n", optarg);
				return 2;
			}
			a->region = (uint32_t)v;
			have_region = true;
			break;
		case 'o':
			if (!cli_parse_number(optarg, 0, UINT64_MAX, &a->offset)) {
				fprintf(stderr, "devmig region: --offset takes a number, not '%s'\n", optarg);
				return 2;
			}
			have_offset = true;
			break;
		case 'c':
			if (!cli_parse_number(optarg, 1, REGION_MAX_BYTES, &v)) {
				fprintf(stderr, "devmig region: --count takes 1..%u, not '%s'\n",
					REGION_MAX_BYTES, optarg);
				return 2;
			}
			a->count = (size_t)v;
			have_count = true;
			break;
		case 'd': hex = optarg; break;
		case 'j': a->json = true; break;
		case 'h': region_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("region", argc, argv))
		return 2;
	if (!a->socket || !have_region || !have_offset) {
		fprintf(stderr, "devmig region: --socket, --region and --offset are required\n");
		return 2;
	}
	if (a->write ? !hex || have_count : !have_count || hex) {
		fprintf(stderr, "devmig region: %s\n", a->write ? "write takes --data HEX, not --count"
								  : "read takes --count C, not --data");
		return 2;
	}
	if (a->write && !(a->data = parse_hex(hex, &a->count))) {
		fprintf(stderr, "devmig region: --data takes an even number of hex digits (1..%u "
				"bytes)\n", REGION_MAX_BYTES);
		return 2;
	}
	return 0;
}

static void region_print(const struct region_args *a, const uint8_t *buf)
{
	char *hex = malloc(2 * a->count + 1);
	if (!hex) {
		fprintf(stderr, "devmig region: out of memory\n");
		return;
	}
	for (size_t i = 0; i < a->count; i++)
		snprintf(hex + 2 * i, 3, "%02x", buf[i]);
	if (a->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "region", json_object_new_int64(a->region));
		json_object_object_add(o, "offset", json_object_new_int64((int64_t)a->offset));
		json_object_object_add(o, "data", json_object_new_string(hex));
		cli_print_json(o);
	} else {
		printf("%s\n", hex);
	}
	free(hex);
}

int devmig_cmd_region(int argc, char **argv)
{
	struct region_args a;
	int rc = region_parse(argc, argv, &a);

	if (rc)
		return rc < 0 ? 0 : rc;
	uint8_t *buf = a.write ? a.data : malloc(a.count);
	struct devmig_client **cl = buf ? cli_connect_all("region", &a.socket, 1, CLI_TIMEOUT_DEFAULT) : NULL;
	if (!cl) {
		free(buf);
		return 1;
	}
	rc = a.write ? devmig_client_region_write(cl[0], a.region, a.offset, buf, a.count)
		     : devmig_client_region_read(cl[0], a.region, a.offset, buf, a.count);
	cli_close_all(cl, 1);
	if (rc)
		fprintf(stderr, "devmig region: %s: %s of %zu bytes at %#llx of region %u refused: %s\n",
			a.socket, a.write ? "write" : "read", a.count,
			(unsigned long long)a.offset, a.region, strerror(-rc));
	else if (!a.write)
		region_print(&a, buf);
	free(buf);
	return rc ? 1 : 0;
}
