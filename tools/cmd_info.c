/* SPDX-License-Identifier: MIT */
/* devmig info: a device's identity, migration capabilities and state. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"
#include "devmig/compat.h"

/* VFIO_PCI_CONFIG_REGION_INDEX: PCI configuration space. */
#define CONFIG_REGION 7u

static void info_usage(FILE *f)
{
	fprintf(f, "usage: devmig info (--socket PATH | --vfio DEVICE) [--json]\n"
		   "\n"
		   "Open the device and print its PCI vendor:device ids, migration capabilities\n"
		   "(STOP_COPY, P2P, PRE_COPY), current migration state, the device's estimate of\n"
		   "its STOP_COPY data, the protocol extensions negotiated, and its region and\n"
		   "interrupt counts; with devmig's deadline extension the device's estimate of\n"
		   "each arc of its state machine (fixed costs, and its STOP_COPY data at the rate\n"
		   "its data was last read) and its last deadline's outcome; with dirty_rate its\n"
		   "cap and measured dirty rate. The device is not changed. vfio-user serves one\n"
		   "client at a time: while another is connected this is refused as busy.\n"
		   "\n"
		   "  --socket PATH  the device's vfio-user socket\n"
		   "  --vfio DEVICE  a kernel VFIO device: a PCI address (0000:01:00.0), an mdev\n"
		   "                 UUID or /sys/bus/mdev/devices/UUID, a sysfs path, or\n"
		   "                 /dev/vfio/devices/vfioN (iommufd:DEVICE forces the cdev)\n"
		   "  --json         machine-readable output\n");
}

/* What the command line asked for. */
struct info_opts {
	char *path;
	bool json;
};

/* What the device says of itself. */
struct info {
	struct devmig_device_info di;
	uint16_t vendor, device;
	char where[300];
	const char *backend;
	uint64_t caps, sc_size;
	enum devmig_state state;
	int caps_rc, state_rc, sc_rc, compat_rc;
	uint32_t ext;                  /* DEVMIG_EXT_* negotiated */
	struct devmig_compat_info compat;
	struct devmig_caps sv;         /* the server's VERSION */
	int est_rc, dr_rc;
	struct devmig_feature_arc_estimates est; /* the deadline extension */
	struct devmig_feature_dirty_rate dr;     /* the dirty_rate extension */
};

static const struct {
	uint32_t bit;
	const char *name;
} extname[] = {
	{ DEVMIG_EXT_PRECOPY_INFO, "precopy_info" },
	{ DEVMIG_EXT_MIG_STATUS, "mig_status" },
	{ DEVMIG_EXT_COMPAT, "compat" },
	{ DEVMIG_EXT_DATA_FD, "data_fd" },
	{ DEVMIG_EXT_DEADLINE, "deadline" },
	{ DEVMIG_EXT_DIRTY_RATE, "dirty_rate" },
};

static const struct {
	uint64_t bit;
	const char *name;
} capname[] = {
	{ DEVMIG_MIG_STOP_COPY, "STOP_COPY" },
	{ DEVMIG_MIG_P2P, "P2P" },
	{ DEVMIG_MIG_PRE_COPY, "PRE_COPY" },
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* 0 to run, -1 after --help, else the exit status of a usage error (said). */
static int info_parse(int argc, char **argv, struct info_opts *io)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	memset(io, 0, sizeof(*io));
	while ((o = getopt_long(argc, argv, "s:V:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (io->path) {
				fprintf(stderr, "devmig info: give one --socket or --vfio\n");
				return 2;
			}
			io->path = o == 'V' ? (char *)cli_vfio_arg("info", optarg) : optarg;
			if (!io->path)
				return 2;
			break;
		case 'j': io->json = true; break;
		case 'h': info_usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args("info", argc, argv))
		return 2;
	if (!io->path) {
		fprintf(stderr, "devmig info: --socket or --vfio is required (devmig info --help)\n");
		return 2;
	}
	return 0;
}

/* Ask the device. 0, or 1 (said) when it cannot be opened or read. */
static int info_run(const struct info_opts *io, struct info *in)
{
	memset(in, 0, sizeof(*in));
	struct devmig_client **cl = cli_connect_all("info", (char **)&io->path, 1,
						    CLI_TIMEOUT_DEFAULT);
	if (!cl)
		return 1;
	struct devmig_client *c = cl[0];
	uint32_t ids = 0;
	in->di.argsz = sizeof(in->di);
	int rc = devmig_client_device_info(c, &in->di);
	if (rc) {
		fprintf(stderr, "devmig info: %s: DEVICE_GET_INFO failed: %s\n", io->path,
			strerror(-rc));
		cli_close_all(cl, 1);
		return 1;
	}
	rc = devmig_client_region_read(c, CONFIG_REGION, 0, &ids, sizeof(ids));
	if (rc) {
		fprintf(stderr, "devmig info: %s: reading the PCI config space failed: %s\n",
			io->path, strerror(-rc));
		cli_close_all(cl, 1);
		return 1;
	}
	devmig_client_describe(c, in->where, sizeof(in->where));
	in->backend = devmig_client_backend(c);
	in->vendor = (uint16_t)(ids & 0xffff);
	in->device = (uint16_t)(ids >> 16);
	in->state = DEVMIG_STATE_ERROR;
	in->caps_rc = devmig_client_mig_caps(c, &in->caps);
	in->state_rc = in->caps_rc ? in->caps_rc : devmig_client_get_state(c, &in->state);
	in->sc_rc = in->caps_rc ? in->caps_rc : devmig_client_stop_copy_size(c, &in->sc_size);
	for (size_t i = 0; i < COUNT(extname); i++)
		if (devmig_client_has_ext(c, extname[i].bit))
			in->ext |= extname[i].bit;
	in->compat_rc = (in->ext & DEVMIG_EXT_COMPAT) ? devmig_client_compat_info(c, &in->compat)
						      : -ENOTSUP;
	in->est_rc = (in->ext & DEVMIG_EXT_DEADLINE) ? devmig_client_arc_estimates(c, &in->est)
						     : -ENOTSUP;
	in->dr_rc = (in->ext & DEVMIG_EXT_DIRTY_RATE) ? devmig_client_dirty_rate(c, &in->dr)
						      : -ENOTSUP;
	devmig_client_server_caps(c, &in->sv);
	cli_close_all(cl, 1);
	return 0;
}

static json_object *estimates_json(const struct devmig_feature_arc_estimates *est)
{
	json_object *o = json_object_new_object(), *a = json_object_new_array();

	json_object_object_add(o, "transfer_rate", json_object_new_int64((int64_t)est->rate));
	json_object_object_add(o, "stop_copy_bytes",
			       json_object_new_int64((int64_t)est->stop_copy_bytes));
	for (uint32_t i = 0; i < est->narcs && i < DEVMIG_ARC_EST_MAX; i++) {
		const struct devmig_arc_estimate *e = &est->arcs[i];
		json_object *x = json_object_new_object();
		json_object_object_add(x, "from", json_object_new_string(devmig_state_name(e->from)));
		json_object_object_add(x, "to", json_object_new_string(devmig_state_name(e->to)));
		json_object_object_add(x, "ns", json_object_new_int64((int64_t)e->ns));
		json_object_object_add(x, "partial",
				       json_object_new_boolean(e->flags & DEVMIG_DEADLINE_PARTIAL));
		json_object_array_add(a, x);
	}
	json_object_object_add(o, "arcs", a);
	json_object *l = NULL;
	if (est->last_deadline_ns || est->last_flags) {
		l = json_object_new_object();
		json_object_object_add(l, "state", json_object_new_string(
							   devmig_state_name(est->last_state)));
		json_object_object_add(l, "deadline_ns",
				       json_object_new_int64((int64_t)est->last_deadline_ns));
		json_object_object_add(l, "estimate_ns",
				       json_object_new_int64((int64_t)est->last_estimate_ns));
		json_object_object_add(l, "elapsed_ns",
				       json_object_new_int64((int64_t)est->last_elapsed_ns));
		json_object_object_add(l, "overrun_ns",
				       json_object_new_int64((int64_t)est->last_overrun_ns));
		json_object_object_add(l, "refused", json_object_new_boolean(
							     est->last_flags & DEVMIG_DEADLINE_REFUSED));
		json_object_object_add(l, "drained", json_object_new_boolean(
							     est->last_flags & DEVMIG_DEADLINE_DRAINED));
	}
	json_object_object_add(o, "last_deadline", l);
	return o;
}

static json_object *dirty_rate_json(const struct devmig_feature_dirty_rate *dr)
{
	json_object *o = json_object_new_object();
	json_object_object_add(o, "cap", json_object_new_int64((int64_t)dr->cap));
	json_object_object_add(o, "measured", json_object_new_int64((int64_t)dr->measured));
	json_object_object_add(o, "throttled_ns", json_object_new_int64((int64_t)dr->throttled_ns));
	json_object_object_add(o, "active",
			       json_object_new_boolean(dr->flags & DEVMIG_DIRTY_RATE_ACTIVE));
	return o;
}

static void print_estimates(const struct devmig_feature_arc_estimates *est)
{
	char b[32], b2[32], b3[32], b4[32];

	if (est->rate)
		printf("deadlines:    stop-copy %s, read at %s/s when last measured\n",
		       cli_bytes((double)est->stop_copy_bytes, b, sizeof(b)),
		       cli_bytes((double)est->rate, b2, sizeof(b2)));
	else
		printf("deadlines:    stop-copy %s, no transfer rate measured yet (estimates marked * "
		       "leave its reading out)\n", cli_bytes((double)est->stop_copy_bytes, b, sizeof(b)));
	for (uint32_t i = 0; i < est->narcs && i < DEVMIG_ARC_EST_MAX; i++) {
		const struct devmig_arc_estimate *e = &est->arcs[i];
		char arc[48];
		snprintf(arc, sizeof(arc), "%s -> %s", devmig_state_name(e->from),
			 devmig_state_name(e->to));
		printf("  %-30s %s%s\n", arc, cli_duration(e->ns, b, sizeof(b)),
		       e->flags & DEVMIG_DEADLINE_PARTIAL ? " *" : "");
	}
	if (est->last_deadline_ns || est->last_flags)
		printf("last deadline: to %s within %s: %s (estimate %s, took %s%s%s)\n",
		       devmig_state_name(est->last_state),
		       cli_duration(est->last_deadline_ns, b, sizeof(b)),
		       est->last_flags & DEVMIG_DEADLINE_REFUSED ? "refused"
		       : est->last_overrun_ns			  ? "late"
								  : "in time",
		       cli_duration(est->last_estimate_ns, b2, sizeof(b2)),
		       cli_duration(est->last_elapsed_ns, b3, sizeof(b3)),
		       est->last_overrun_ns ? ", over by " : "",
		       est->last_overrun_ns ? cli_duration(est->last_overrun_ns, b4, sizeof(b4)) : "");
}

static void info_print_json(const struct info_opts *io, const struct info *in)
{
	json_object *j = json_object_new_object();
	char buf[24];
	bool kernel = devmig_addr_is_vfio(io->path);

	json_object_object_add(j, kernel ? "vfio" : "socket",
			       json_object_new_string(kernel ? io->path + strlen(DEVMIG_VFIO_PREFIX)
							     : io->path));
	json_object_object_add(j, "backend", json_object_new_string(in->backend));
	json_object_object_add(j, "connection", json_object_new_string(in->where));
	snprintf(buf, sizeof(buf), "%04x", in->vendor);
	json_object_object_add(j, "vendor", json_object_new_string(buf));
	snprintf(buf, sizeof(buf), "%04x", in->device);
	json_object_object_add(j, "device", json_object_new_string(buf));
	snprintf(buf, sizeof(buf), "%04x:%04x", in->vendor, in->device);
	json_object_object_add(j, "id", json_object_new_string(buf));
	json_object_object_add(j, "migratable", json_object_new_boolean(!in->caps_rc));
	json_object *jc = json_object_new_array();
	for (size_t i = 0; i < COUNT(capname); i++)
		if (in->caps & capname[i].bit)
			json_object_array_add(jc, json_object_new_string(capname[i].name));
	json_object_object_add(j, "caps", jc);
	json_object_object_add(j, "caps_mask", json_object_new_int64((int64_t)in->caps));
	json_object_object_add(j, "state", in->state_rc ? NULL
							: json_object_new_string(
								  devmig_state_name(in->state)));
	json_object_object_add(j, "stop_copy_size",
			       in->sc_rc ? NULL : json_object_new_int64((int64_t)in->sc_size));
	json_object *je = json_object_new_array();
	for (size_t i = 0; i < COUNT(extname); i++)
		if (in->ext & extname[i].bit)
			json_object_array_add(je, json_object_new_string(extname[i].name));
	json_object_object_add(j, "extensions", je);
	json_object *jv = NULL;
	if (!in->compat_rc) {
		jv = json_object_new_object();
		json_object_object_add(jv, "version", json_object_new_string(in->compat.version));
		json_object *ja = json_object_new_array();
		for (unsigned i = 0; i < in->compat.naccepts && i < DEVMIG_ACCEPTS_MAX; i++)
			json_object_array_add(ja, json_object_new_string(in->compat.accepts[i]));
		json_object_object_add(jv, "accepts", ja);
		snprintf(buf, sizeof(buf), "%016llx",
			 (unsigned long long)in->compat.config_fingerprint);
		json_object_object_add(jv, "config_fingerprint", json_object_new_string(buf));
	}
	json_object_object_add(j, "compat", jv);
	json_object_object_add(j, "arc_estimates", in->est_rc ? NULL : estimates_json(&in->est));
	json_object_object_add(j, "dirty_rate", in->dr_rc ? NULL : dirty_rate_json(&in->dr));
	json_object_object_add(j, "regions", json_object_new_int64(in->di.num_regions));
	json_object_object_add(j, "irqs", json_object_new_int64(in->di.num_irqs));
	json_object_object_add(j, "max_data_xfer_size",
			       json_object_new_int64(in->sv.max_data_xfer_size));
	/* VERSION's "migration" capability, as the server sent it */
	json_object *jm = NULL;
	if (in->sv.migration) {
		jm = json_object_new_object();
		json_object_object_add(jm, "pgsize", json_object_new_int64((int64_t)in->sv.mig_pgsize));
		json_object_object_add(jm, "max_bitmap_size",
				       json_object_new_int64((int64_t)in->sv.mig_max_bitmap_size));
	}
	json_object_object_add(j, "version_migration", jm);
	cli_print_json(j);
}

static void info_print_text(const struct info_opts *io, const struct info *in)
{
	char b[32];

	printf("device:       %s\n", io->path);
	printf("backend:      %s\n", in->where);
	printf("id:           %04x:%04x\n", in->vendor, in->device);
	printf("regions:      %u\n", in->di.num_regions);
	printf("irqs:         %u\n", in->di.num_irqs);
	if (in->caps_rc) {
		printf("migration:    not migratable (%s)\n", strerror(-in->caps_rc));
	} else {
		printf("migration:   ");
		for (size_t i = 0; i < COUNT(capname); i++)
			if (in->caps & capname[i].bit)
				printf(" %s", capname[i].name);
		if (in->caps & ~DEVMIG_MIG_ALL)
			printf(" (unknown bits 0x%llx)",
			       (unsigned long long)(in->caps & ~DEVMIG_MIG_ALL));
		printf("\n");
	}
	if (in->sv.migration)
		printf("VERSION:      migration (pgsize %llu, dirty bitmaps up to %s)\n",
		       (unsigned long long)in->sv.mig_pgsize,
		       cli_bytes((double)in->sv.mig_max_bitmap_size, b, sizeof(b)));
	else
		printf("VERSION:      no migration capability\n");
	if (in->state_rc)
		printf("state:        unknown (%s)\n", strerror(-in->state_rc));
	else
		printf("state:        %s\n", devmig_state_name(in->state));
	if (in->sc_rc)
		printf("stop-copy:    unknown (%s)\n", strerror(-in->sc_rc));
	else
		printf("stop-copy:    %s (the device's estimate of its state)\n",
		       cli_bytes((double)in->sc_size, b, sizeof(b)));
	printf("extensions:  ");
	for (size_t i = 0; i < COUNT(extname); i++)
		if (in->ext & extname[i].bit)
			printf(" %s", extname[i].name);
	printf("%s\n", in->ext ? "" : " none");
	if (!in->compat_rc) {
		printf("version:      %s\n", in->compat.version);
		if (in->compat.naccepts) {
			printf("accepts:     ");
			for (unsigned i = 0; i < in->compat.naccepts && i < DEVMIG_ACCEPTS_MAX; i++)
				printf(" %s", in->compat.accepts[i]);
			printf("\n");
		}
		printf("config hash:  %016llx\n", (unsigned long long)in->compat.config_fingerprint);
	}
	if (!in->est_rc)
		print_estimates(&in->est);
	if (!in->dr_rc) {
		char b2[32];
		if (in->dr.cap)
			snprintf(b2, sizeof(b2), "%s/s", cli_bytes((double)in->dr.cap, b, sizeof(b)));
		else
			snprintf(b2, sizeof(b2), "none");
		printf("dirty rate:   %s/s measured, cap %s%s\n",
		       cli_bytes((double)in->dr.measured, b, sizeof(b)), b2,
		       in->dr.flags & DEVMIG_DIRTY_RATE_ACTIVE ? " (in force)" : "");
	}
}

int devmig_cmd_info(int argc, char **argv)
{
	struct info_opts io;
	struct info in;
	int rc = info_parse(argc, argv, &io);

	if (rc)
		return rc < 0 ? 0 : rc;
	rc = info_run(&io, &in);
	if (rc)
		return rc;
	if (io.json)
		info_print_json(&io, &in);
	else
		info_print_text(&io, &in);
	return 0;
}
