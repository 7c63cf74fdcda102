/* SPDX-License-Identifier: MIT */
/* devmig info: a device's identity, migration capabilities and state. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "devmig/compat.h"
#include "cli_util.h"

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

int devmig_cmd_info(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "vfio", required_argument, NULL, 'V' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	char *path = NULL;
	bool json = false;
	int o;

	while ((o = getopt_long(argc, argv, "s:V:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
		case 'V':
			if (path) {
				fprintf(stderr, "devmig info: give one --socket or --vfio\n");
				return 2;
			}
			path = o == 'V' ? (char *)cli_vfio_arg("info", optarg) : optarg;
			if (!path)
				return 2;
			break;
		case 'j': json = true; break;
		case 'h': info_usage(stdout); return 0;
		default: return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "devmig info: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!path) {
		fprintf(stderr, "devmig info: --socket or --vfio is required (devmig info --help)\n");
		return 2;
	}

	struct devmig_client **cl = cli_connect_all("info", &path, 1);
	if (!cl)
		return 1;
	struct devmig_client *c = cl[0];
	struct devmig_device_info di = { .argsz = sizeof(di) };
	uint32_t ids = 0;
	int rc = devmig_client_device_info(c, &di);
	if (rc) {
		fprintf(stderr, "devmig info: %s: DEVICE_GET_INFO failed: %s\n", path, strerror(-rc));
		cli_close_all(cl, 1);
		return 1;
	}
	rc = devmig_client_region_read(c, CONFIG_REGION, 0, &ids, sizeof(ids));
	if (rc) {
		fprintf(stderr, "devmig info: %s: reading the PCI config space failed: %s\n", path,
			strerror(-rc));
		cli_close_all(cl, 1);
		return 1;
	}
	char where[300];
	devmig_client_describe(c, where, sizeof(where));
	const char *backend = devmig_client_backend(c);
	uint16_t vendor = (uint16_t)(ids & 0xffff), device = (uint16_t)(ids >> 16);

	uint64_t caps = 0, sc_size = 0;
	enum devmig_state state = DEVMIG_STATE_ERROR;
	int caps_rc = devmig_client_mig_caps(c, &caps);
	int state_rc = caps_rc ? caps_rc : devmig_client_get_state(c, &state);
	int sc_rc = caps_rc ? caps_rc : devmig_client_stop_copy_size(c, &sc_size);
	static const struct {
		uint32_t bit;
		const char *name;
	} extname[] = {
		{ DEVMIG_EXT_PRECOPY_INFO, "precopy_info" },
		{ DEVMIG_EXT_MIG_STATUS, "mig_status" },
		{ DEVMIG_EXT_COMPAT, "compat" },
		{ DEVMIG_EXT_DEADLINE, "deadline" },
		{ DEVMIG_EXT_DIRTY_RATE, "dirty_rate" },
	};
	uint32_t ext = 0;
	for (size_t i = 0; i < sizeof(extname) / sizeof(extname[0]); i++)
		if (devmig_client_has_ext(c, extname[i].bit))
			ext |= extname[i].bit;
	struct devmig_compat_info compat;
	int compat_rc = (ext & DEVMIG_EXT_COMPAT) ? devmig_client_compat_info(c, &compat) : -ENOTSUP;
	struct devmig_feature_arc_estimates est;
	int est_rc = (ext & DEVMIG_EXT_DEADLINE) ? devmig_client_arc_estimates(c, &est) : -ENOTSUP;
	struct devmig_feature_dirty_rate dr;
	int dr_rc = (ext & DEVMIG_EXT_DIRTY_RATE) ? devmig_client_dirty_rate(c, &dr) : -ENOTSUP;
	struct devmig_caps sv;
	devmig_client_server_caps(c, &sv);
	cli_close_all(cl, 1);

	static const struct {
		uint64_t bit;
		const char *name;
	} capname[] = {
		{ DEVMIG_MIG_STOP_COPY, "STOP_COPY" },
		{ DEVMIG_MIG_P2P, "P2P" },
		{ DEVMIG_MIG_PRE_COPY, "PRE_COPY" },
	};

	if (json) {
		json_object *j = json_object_new_object();
		char buf[24];
		bool kernel = devmig_addr_is_vfio(path);
		json_object_object_add(j, kernel ? "vfio" : "socket",
				       json_object_new_string(kernel ? path + strlen(DEVMIG_VFIO_PREFIX)
								     : path));
		json_object_object_add(j, "backend", json_object_new_string(backend));
		json_object_object_add(j, "connection", json_object_new_string(where));
		snprintf(buf, sizeof(buf), "%04x", vendor);
		json_object_object_add(j, "vendor", json_object_new_string(buf));
		snprintf(buf, sizeof(buf), "%04x", device);
		json_object_object_add(j, "device", json_object_new_string(buf));
		snprintf(buf, sizeof(buf), "%04x:%04x", vendor, device);
		json_object_object_add(j, "id", json_object_new_string(buf));
		json_object_object_add(j, "migratable", json_object_new_boolean(!caps_rc));
		json_object *jc = json_object_new_array();
		for (size_t i = 0; i < sizeof(capname) / sizeof(capname[0]); i++)
			if (caps & capname[i].bit)
				json_object_array_add(jc, json_object_new_string(capname[i].name));
		json_object_object_add(j, "caps", jc);
		json_object_object_add(j, "caps_mask", json_object_new_int64((int64_t)caps));
		json_object_object_add(j, "state", state_rc ? NULL
							    : json_object_new_string(
								      devmig_state_name(state)));
		json_object_object_add(j, "stop_copy_size",
				       sc_rc ? NULL : json_object_new_int64((int64_t)sc_size));
		json_object *je = json_object_new_array();
		for (size_t i = 0; i < sizeof(extname) / sizeof(extname[0]); i++)
			if (ext & extname[i].bit)
				json_object_array_add(je, json_object_new_string(extname[i].name));
		json_object_object_add(j, "extensions", je);
		json_object *jv = NULL;
		if (!compat_rc) {
			jv = json_object_new_object();
			json_object_object_add(jv, "version", json_object_new_string(compat.version));
			json_object *ja = json_object_new_array();
			for (unsigned i = 0; i < compat.naccepts && i < DEVMIG_ACCEPTS_MAX; i++)
				json_object_array_add(ja, json_object_new_string(compat.accepts[i]));
			json_object_object_add(jv, "accepts", ja);
			snprintf(buf, sizeof(buf), "%016llx",
				 (unsigned long long)compat.config_fingerprint);
			json_object_object_add(jv, "config_fingerprint", json_object_new_string(buf));
		}
		json_object_object_add(j, "compat", jv);
		json_object_object_add(j, "arc_estimates", est_rc ? NULL : estimates_json(&est));
		json_object *jd = NULL;
		if (!dr_rc) {
			jd = json_object_new_object();
			json_object_object_add(jd, "cap", json_object_new_int64((int64_t)dr.cap));
			json_object_object_add(jd, "measured", json_object_new_int64((int64_t)dr.measured));
			json_object_object_add(jd, "throttled_ns",
					       json_object_new_int64((int64_t)dr.throttled_ns));
			json_object_object_add(jd, "active", json_object_new_boolean(
								     dr.flags & DEVMIG_DIRTY_RATE_ACTIVE));
		}
		json_object_object_add(j, "dirty_rate", jd);
		json_object_object_add(j, "regions", json_object_new_int64(di.num_regions));
		json_object_object_add(j, "irqs", json_object_new_int64(di.num_irqs));
		json_object_object_add(j, "max_data_xfer_size",
				       json_object_new_int64(sv.max_data_xfer_size));
		/* VERSION's "migration" capability, as the server sent it */
		json_object *jm = NULL;
		if (sv.migration) {
			jm = json_object_new_object();
			json_object_object_add(jm, "pgsize", json_object_new_int64((int64_t)sv.mig_pgsize));
			json_object_object_add(jm, "max_bitmap_size",
					       json_object_new_int64((int64_t)sv.mig_max_bitmap_size));
		}
		json_object_object_add(j, "version_migration", jm);
		cli_print_json(j);
		return 0;
	}

	char b[32];
	printf("device:       %s\n", path);
	printf("backend:      %s\n", where);
	printf("id:           %04x:%04x\n", vendor, device);
	printf("regions:      %u\n", di.num_regions);
	printf("irqs:         %u\n", di.num_irqs);
	if (caps_rc) {
		printf("migration:    not migratable (%s)\n", strerror(-caps_rc));
	} else {
		printf("migration:   ");
		for (size_t i = 0; i < sizeof(capname) / sizeof(capname[0]); i++)
			if (caps & capname[i].bit)
				printf(" %s", capname[i].name);
		if (caps & ~DEVMIG_MIG_ALL)
			printf(" (unknown bits 0x%llx)", (unsigned long long)(caps & ~DEVMIG_MIG_ALL));
		printf("\n");
	}
	if (sv.migration)
		printf("VERSION:      migration (pgsize %llu, dirty bitmaps up to %s)\n",
		       (unsigned long long)sv.mig_pgsize,
		       cli_bytes((double)sv.mig_max_bitmap_size, b, sizeof(b)));
	else
		printf("VERSION:      no migration capability\n");
	if (state_rc)
		printf("state:        unknown (%s)\n", strerror(-state_rc));
	else
		printf("state:        %s\n", devmig_state_name(state));
	if (sc_rc)
		printf("stop-copy:    unknown (%s)\n", strerror(-sc_rc));
	else
		printf("stop-copy:    %s (the device's estimate of its state)\n",
		       cli_bytes((double)sc_size, b, sizeof(b)));
	printf("extensions:  ");
	for (size_t i = 0; i < sizeof(extname) / sizeof(extname[0]); i++)
		if (ext & extname[i].bit)
			printf(" %s", extname[i].name);
	printf("%s\n", ext ? "" : " none");
	if (!compat_rc) {
		printf("version:      %s\n", compat.version);
		if (compat.naccepts) {
			printf("accepts:     ");
			for (unsigned i = 0; i < compat.naccepts && i < DEVMIG_ACCEPTS_MAX; i++)
				printf(" %s", compat.accepts[i]);
			printf("\n");
		}
		printf("config hash:  %016llx\n", (unsigned long long)compat.config_fingerprint);
	}
	if (!est_rc)
		print_estimates(&est);
	if (!dr_rc) {
		char b2[32];
		if (dr.cap)
			snprintf(b2, sizeof(b2), "%s/s", cli_bytes((double)dr.cap, b, sizeof(b)));
		else
			snprintf(b2, sizeof(b2), "none");
		printf("dirty rate:   %s/s measured, cap %s%s\n",
		       cli_bytes((double)dr.measured, b, sizeof(b)), b2,
		       dr.flags & DEVMIG_DIRTY_RATE_ACTIVE ? " (in force)" : "");
	}
	return 0;
}
