/* SPDX-License-Identifier: MIT */
/*
 * devmig compat: can this target take that source's state? For one pair,
 * or across a fleet of hosts from their `devmig info --json` reports, so an
 * operator finds a destination without starting a migration that will fail.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"
#include "devmig/client.h"
#include "devmig/compat.h"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: devmig compat --source DEVICE|VERSION [--fingerprint HEX] --target DEVICE [--json]\n"
		"       devmig compat --fleet REPORT.json... [--json]\n"
		"\n"
		"The first form asks whether the device at --target can load state saved by the\n"
		"source. A DEVICE is a vfio-user socket path or vfio:DEVICE for a kernel VFIO\n"
		"device (which has no migration identity to compare: the kernel offers none);\n"
		"the source may also be a version string such as 1af4:10f1-memblk-v1 (then\n"
		"--fingerprint gives its config-space fingerprint, or only versions are compared).\n"
		"Exit 0: compatible; 1: not, with the reason; 2: usage or connection error.\n"
		"\n"
		"The second form reads reports written by 'devmig info --json' (one device, an array\n"
		"of devices, or {\"host\": NAME, \"devices\": [...]}) and lists, for every source\n"
		"device, the targets that can take its state.\n");
}

static int read_info(const char *path, struct devmig_compat_info *ci)
{
	char err[256];
	struct devmig_client *c = devmig_client_open(path, NULL, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "devmig compat: %s\n", err);
		return 2;
	}
	int rc = devmig_client_compat_info(c, ci);
	bool kernel = !strcmp(devmig_client_backend(c), "kernel");
	devmig_client_close(c);
	if (rc) {
		fprintf(stderr, "devmig compat: %s does not report its migration identity: %s%s\n",
			path, strerror(-rc),
			kernel ? " (a kernel VFIO device has no version to compare; the driver "
				 "checks the stream when it loads it)"
			       : "");
		return 2;
	}
	return 0;
}

static bool is_socket(const char *p)
{
	struct stat st;
	return !stat(p, &st) && S_ISSOCK(st.st_mode);
}

/* A config fingerprint: hex digits, optionally 0x-prefixed. */
static bool parse_fingerprint(const char *s, uint64_t *out)
{
	char *end;
	if (!s || !*s)
		return false;
	errno = 0;
	*out = strtoull(s, &end, 16);
	return !errno && !*end && end != s;
}

static int pair(const char *source, const char *fp, const char *target, bool json)
{
	struct devmig_compat_info src = { 0 }, dst;
	bool know_fp = true;

	if (is_socket(source) || devmig_addr_is_vfio(source)) {
		int rc = read_info(source, &src);
		if (rc)
			return rc;
	} else if (strchr(source, '/')) {
		/* A path, not a version string: say so rather than compare it. */
		fprintf(stderr, "devmig compat: no device socket at %s\n", source);
		return 2;
	} else {
		snprintf(src.version, sizeof(src.version), "%s", source);
		know_fp = fp != NULL;
		if (fp && !parse_fingerprint(fp, &src.config_fingerprint)) {
			fprintf(stderr, "devmig compat: --fingerprint takes hex digits, not '%s'\n", fp);
			return 2;
		}
	}
	int rc = read_info(target, &dst);
	if (rc)
		return rc;
	char why[256] = "";
	rc = devmig_compat_check(&dst, src.version,
				 know_fp ? src.config_fingerprint : dst.config_fingerprint, why,
				 sizeof(why));
	if (json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "source", json_object_new_string(src.version));
		json_object_object_add(o, "target", json_object_new_string(dst.version));
		json_object_object_add(o, "compatible", json_object_new_boolean(!rc));
		if (rc)
			json_object_object_add(o, "reason", json_object_new_string(why));
		printf("%s\n", json_object_to_json_string_ext(o, JSON_C_TO_STRING_PRETTY));
		json_object_put(o);
	} else if (!rc) {
		printf("compatible: %s accepts state from %s%s\n", dst.version, src.version,
		       know_fp ? "" : " (versions only: no source fingerprint given)");
	} else {
		printf("not compatible: %s\n", why);
	}
	return rc ? 1 : 0;
}

/* ---- fleet ---- */

struct dev {
	char name[256]; /* host:socket */
	struct devmig_compat_info ci;
};

static bool parse_device(json_object *o, const char *host, struct dev *d, char *err, size_t el)
{
	json_object *compat, *v;
	const char *sock = "device";

	if (!json_object_is_type(o, json_type_object)) {
		snprintf(err, el, "a device entry is not an object");
		return false;
	}
	if (json_object_object_get_ex(o, "socket", &v) && json_object_is_type(v, json_type_string))
		sock = json_object_get_string(v);
	snprintf(d->name, sizeof(d->name), "%.100s:%.150s", host, sock);
	memset(&d->ci, 0, sizeof(d->ci));
	if (!json_object_object_get_ex(o, "compat", &compat) ||
	    !json_object_is_type(compat, json_type_object) ||
	    !json_object_object_get_ex(compat, "version", &v) ||
	    !json_object_is_type(v, json_type_string)) {
		snprintf(err, el, "%.200s has no compat.version (is its server new enough?)", d->name);
		return false;
	}
	snprintf(d->ci.version, sizeof(d->ci.version), "%s", json_object_get_string(v));
	if (!json_object_object_get_ex(compat, "config_fingerprint", &v) ||
	    !json_object_is_type(v, json_type_string) ||
	    !parse_fingerprint(json_object_get_string(v), &d->ci.config_fingerprint)) {
		snprintf(err, el, "%.200s: compat.config_fingerprint is missing or not hex", d->name);
		return false;
	}
	if (json_object_object_get_ex(compat, "accepts", &v) &&
	    json_object_is_type(v, json_type_array)) {
		size_t n = json_object_array_length(v);
		for (size_t i = 0; i < n && d->ci.naccepts < DEVMIG_ACCEPTS_MAX; i++) {
			json_object *a = json_object_array_get_idx(v, i);
			if (json_object_is_type(a, json_type_string))
				snprintf(d->ci.accepts[d->ci.naccepts++], DEVMIG_VERSION_MAX, "%s",
					 json_object_get_string(a));
		}
	}
	return true;
}

static int load_report(const char *path, struct dev **devs, size_t *n, char *err, size_t el)
{
	json_object *root = json_object_from_file(path), *list = root, *h;
	const char *slash = strrchr(path, '/');
	char host[128];

	if (!root) {
		snprintf(err, el, "%s: not a JSON report (%s)", path, json_util_get_last_err());
		return -1;
	}
	snprintf(host, sizeof(host), "%s", slash ? slash + 1 : path);
	char *dot = strrchr(host, '.');
	if (dot)
		*dot = 0;
	if (json_object_is_type(root, json_type_object) &&
	    json_object_object_get_ex(root, "devices", &list)) {
		if (json_object_object_get_ex(root, "host", &h) && json_object_is_type(h, json_type_string))
			snprintf(host, sizeof(host), "%s", json_object_get_string(h));
	} else if (json_object_is_type(root, json_type_object)) {
		list = NULL; /* one device */
	}
	/* Check the type before asking for a length: json-c asserts on non-arrays. */
	if (list && !json_object_is_type(list, json_type_array)) {
		snprintf(err, el, "%s: %s is not an array", path,
			 list == root ? "the report" : "\"devices\"");
		json_object_put(root);
		return -1;
	}
	size_t count = list ? json_object_array_length(list) : 1;
	struct dev *nd = realloc(*devs, (*n + count) * sizeof(**devs));
	if (!nd) {
		json_object_put(root);
		return -1;
	}
	*devs = nd;
	for (size_t i = 0; i < count; i++) {
		json_object *o = list ? json_object_array_get_idx(list, i) : root;
		char e[300];
		if (!parse_device(o, host, &nd[*n], e, sizeof(e))) {
			snprintf(err, el, "%.150s: %.300s", path, e);
			json_object_put(root);
			return -1;
		}
		(*n)++;
	}
	json_object_put(root);
	return 0;
}

static int fleet(char **files, int nfiles, bool json)
{
	struct dev *devs = NULL;
	size_t n = 0;
	char err[512];

	for (int i = 0; i < nfiles; i++) {
		if (load_report(files[i], &devs, &n, err, sizeof(err))) {
			fprintf(stderr, "devmig compat: %s\n", err);
			free(devs);
			return 2;
		}
	}
	json_object *out = json ? json_object_new_array() : NULL;
	for (size_t s = 0; s < n; s++) {
		json_object *targets = json ? json_object_new_array() : NULL;
		if (!json)
			printf("%s (%s):\n", devs[s].name, devs[s].ci.version);
		unsigned found = 0;
		for (size_t t = 0; t < n; t++) {
			char why[256];
			if (t == s || devmig_compat_check(&devs[t].ci, devs[s].ci.version,
							  devs[s].ci.config_fingerprint, why, sizeof(why)))
				continue;
			found++;
			if (json)
				json_object_array_add(targets, json_object_new_string(devs[t].name));
			else
				printf("    -> %s (%s)\n", devs[t].name, devs[t].ci.version);
		}
		if (json) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "source", json_object_new_string(devs[s].name));
			json_object_object_add(o, "version", json_object_new_string(devs[s].ci.version));
			json_object_object_add(o, "targets", targets);
			json_object_array_add(out, o);
		} else if (!found) {
			printf("    (no compatible target in these reports)\n");
		}
	}
	if (json) {
		printf("%s\n", json_object_to_json_string_ext(out, JSON_C_TO_STRING_PRETTY));
		json_object_put(out);
	}
	free(devs);
	return 0;
}

int devmig_cmd_compat(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "source", required_argument, NULL, 's' },
		{ "target", required_argument, NULL, 't' },
		{ "fingerprint", required_argument, NULL, 'f' },
		{ "fleet", no_argument, NULL, 'F' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	const char *source = NULL, *target = NULL, *fp = NULL;
	bool json = false, is_fleet = false;
	int o;

	optind = 1;
	while ((o = getopt_long(argc, argv, "s:t:f:Fjh", opts, NULL)) != -1) {
		switch (o) {
		case 's': source = optarg; break;
		case 't': target = optarg; break;
		case 'f': fp = optarg; break;
		case 'F': is_fleet = true; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (is_fleet) {
		if (optind >= argc || source || target) {
			fprintf(stderr, "devmig compat: --fleet takes report files and nothing else\n");
			return 2;
		}
		return fleet(argv + optind, argc - optind, json);
	}
	if (!source || !target || optind != argc) {
		fprintf(stderr, "devmig compat: give --source and --target, or --fleet FILES (see --help)\n");
		return 2;
	}
	return pair(source, fp, target, json);
}
