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
#include "cli_format.h"
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
		"device; the source may also be a version string such as 1af4:10f1-memblk-v1\n"
		"(then --fingerprint gives its config-space fingerprint, or only versions are\n"
		"compared). When a side lacks devmig's compat extension (a kernel VFIO device,\n"
		"a libvfio-user server), the two must be the same PCI device by config space:\n"
		"vendor, device, subsystem ids, class, revision.\n"
		"Nothing changes state; a refusal ends with the state each device is in.\n"
		"Exit 0: compatible; 1: not, with the reason; 2: usage or connection error.\n"
		"\n"
		"The second form reads reports written by 'devmig info --json' (one device, an array\n"
		"of devices, or {\"host\": NAME, \"devices\": [...]}) and lists, for every source\n"
		"device, the targets that can take its state.\n");
}

/* One side of a pair: what its server says, and the state it is in. */
struct side {
	struct devmig_compat_info ci;
	bool has_compat;               /* devmig's compat extension answered */
	struct devmig_pci_identity id;
	bool id_known;
	const char *state;             /* "RUNNING", ..., or "unknown" */
};

static int read_side(const char *path, struct side *sd)
{
	char err[256];
	enum devmig_state st;
	struct devmig_client *c = devmig_client_open(path, NULL, err, sizeof(err));
	if (!c) {
		fprintf(stderr, "devmig compat: %s\n", err);
		return 2;
	}
	sd->has_compat = devmig_client_compat_info(c, &sd->ci) == 0;
	if (!sd->has_compat)
		memset(&sd->ci, 0, sizeof(sd->ci));
	sd->id_known = devmig_client_pci_identity(c, &sd->id) == 0;
	sd->state = devmig_client_get_state(c, &st) ? "unknown" : devmig_state_name(st);
	devmig_client_close(c);
	if (!sd->has_compat && !sd->id_known) {
		fprintf(stderr, "devmig compat: %s reports neither its migration identity nor a "
				"readable config space\n", path);
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

static const char *side_name(const struct side *sd, char *buf, size_t len)
{
	if (sd->has_compat)
		return sd->ci.version;
	devmig_pci_identity_format(&sd->id, buf, len);
	return buf;
}

/* What the command line asked for. */
struct compat_opts {
	const char *source, *target, *fp;
	bool json, fleet;
	char **files;       /* --fleet: the reports */
	int nfiles;
};

/* One pair's verdict. */
struct pair_result {
	struct side src, dst;
	bool know_fp;       /* the source's fingerprint is known */
	const char *how;    /* "compat" or "pci_identity" */
	int rc;             /* 0: compatible */
	char why[300];
};

/*
 * Read both sides and judge. 0 with res filled, or the exit status (2) of
 * an error (said).
 */
static int pair_run(const struct compat_opts *co, struct pair_result *res)
{
	const char *source = co->source, *target = co->target, *fp = co->fp;
	bool src_socket = is_socket(source) || devmig_addr_is_vfio(source);
	int rc;

	memset(res, 0, sizeof(*res));
	res->know_fp = true;
	if (src_socket) {
		rc = read_side(source, &res->src);
		if (rc)
			return rc;
	} else if (strchr(source, '/')) {
		/* A path, not a version string: say so rather than compare it. */
		fprintf(stderr, "devmig compat: no device socket at %s\n", source);
		return 2;
	} else {
		snprintf(res->src.ci.version, sizeof(res->src.ci.version), "%s", source);
		res->src.has_compat = true;
		res->know_fp = fp != NULL;
		if (fp && !parse_fingerprint(fp, &res->src.ci.config_fingerprint)) {
			fprintf(stderr, "devmig compat: --fingerprint takes hex digits, not '%s'\n", fp);
			return 2;
		}
	}
	rc = read_side(target, &res->dst);
	if (rc)
		return rc;
	const struct side *src = &res->src, *dst = &res->dst;
	if (src->has_compat && dst->has_compat) {
		res->how = "compat";
		res->rc = devmig_compat_check(&dst->ci, src->ci.version,
					      res->know_fp ? src->ci.config_fingerprint
							   : dst->ci.config_fingerprint,
					      res->why, sizeof(res->why));
		return 0;
	}
	if (!src_socket) {
		fprintf(stderr, "devmig compat: %s does not report its migration identity (no devmig "
				"compat extension): give --source a device socket to compare their "
				"config spaces\n", target);
		return 2;
	}
	/* A foreign peer: the two must be the same PCI device. */
	res->how = "pci_identity";
	if (!src->id_known || !dst->id_known) {
		fprintf(stderr, "devmig compat: the %s config space cannot be read, and only "
				"one side has devmig's compat extension\n",
			src->id_known ? "target's" : "source's");
		return 2;
	}
	res->rc = devmig_pci_identity_check(&src->id, &dst->id, res->why, sizeof(res->why));
	return 0;
}

static void pair_print(const struct compat_opts *co, const struct pair_result *res)
{
	const struct side *src = &res->src, *dst = &res->dst;
	char sb[128], tb[128];
	const char *sname = side_name(src, sb, sizeof(sb)), *tname = side_name(dst, tb, sizeof(tb));

	if (co->json) {
		json_object *o = json_object_new_object();
		json_object_object_add(o, "source", json_object_new_string(sname));
		json_object_object_add(o, "target", json_object_new_string(tname));
		json_object_object_add(o, "compatible", json_object_new_boolean(!res->rc));
		json_object_object_add(o, "checked", json_object_new_string(res->how));
		if (res->rc)
			json_object_object_add(o, "reason", json_object_new_string(res->why));
		if (src->state)
			json_object_object_add(o, "source_state", json_object_new_string(src->state));
		json_object_object_add(o, "target_state", json_object_new_string(dst->state));
		cli_print_json(o);
	} else if (!res->rc && !strcmp(res->how, "compat")) {
		printf("compatible: %s accepts state from %s%s\n", tname, sname,
		       res->know_fp ? "" : " (versions only: no source fingerprint given)");
	} else if (!res->rc) {
		printf("compatible: the same device (%s); without devmig's compat extension on both "
		       "sides only the config-space identity is compared\n", tname);
	} else if (src->state) {
		/* compat changes nothing: say where both devices are. */
		printf("not compatible: %s; left: source %s, target %s\n", res->why, src->state,
		       dst->state);
	} else {
		printf("not compatible: %s; left: target %s\n", res->why, dst->state);
	}
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

/* Every device of the reports; NULL (said) when one cannot be read. */
static struct dev *fleet_load(char **files, int nfiles, size_t *n)
{
	struct dev *devs = NULL;
	char err[512];

	*n = 0;
	for (int i = 0; i < nfiles; i++) {
		if (load_report(files[i], &devs, n, err, sizeof(err))) {
			fprintf(stderr, "devmig compat: %s\n", err);
			free(devs);
			return NULL;
		}
	}
	if (!devs)
		devs = calloc(1, sizeof(*devs));
	return devs;
}

/* For every source device, the targets that can take its state. */
static void fleet_print(const struct dev *devs, size_t n, bool json)
{
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
	if (json)
		cli_print_json(out);
}

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int compat_parse(int argc, char **argv, struct compat_opts *co)
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
	int o;

	memset(co, 0, sizeof(*co));
	optind = 1;
	while ((o = getopt_long(argc, argv, "s:t:f:Fjh", opts, NULL)) != -1) {
		switch (o) {
		case 's': co->source = optarg; break;
		case 't': co->target = optarg; break;
		case 'f': co->fp = optarg; break;
		case 'F': co->fleet = true; break;
		case 'j': co->json = true; break;
		case 'h': usage(stdout); return -1;
		default: usage(stderr); return 2;
		}
	}
	if (co->fleet) {
		if (optind >= argc || co->source || co->target) {
			fprintf(stderr, "devmig compat: --fleet takes report files and nothing else\n");
			return 2;
		}
		co->files = argv + optind;
		co->nfiles = argc - optind;
		return 0;
	}
	if (!co->source || !co->target || optind != argc) {
		fprintf(stderr, "devmig compat: give --source and --target, or --fleet FILES (see --help)\n");
		return 2;
	}
	return 0;
}

int devmig_cmd_compat(int argc, char **argv)
{
	struct compat_opts co;
	int rc = compat_parse(argc, argv, &co);

	if (rc)
		return rc < 0 ? 0 : rc;
	if (co.fleet) {
		size_t n;
		struct dev *devs = fleet_load(co.files, co.nfiles, &n);
		if (!devs)
			return 2;
		fleet_print(devs, n, co.json);
		free(devs);
		return 0;
	}
	struct pair_result res;
	rc = pair_run(&co, &res);
	if (rc)
		return rc;
	pair_print(&co, &res);
	return res.rc ? 1 : 0;
}
