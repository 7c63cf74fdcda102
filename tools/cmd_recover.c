/* SPDX-License-Identifier: MIT */
/* devmig resume / devmig reset: one step back from a failed migration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_devices.h"
#include "cli_format.h"

static void resume_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig resume --socket DEV [--socket DEV2 ...] [--json]\n"
		"\n"
		"Put devices a failed or abandoned migration left stopped or mid-session back\n"
		"to RUNNING with their state: from PRE_COPY, PRE_COPY_P2P, STOP_COPY, STOP or\n"
		"RUNNING_P2P (a session in progress is ended, the device's own state kept).\n"
		"With several devices, every one reaches RUNNING_P2P before any runs. A device\n"
		"already RUNNING is left as it is. A destination mid-load (RESUMING) has no\n"
		"state of its own to resume and a device in ERROR has lost it: both are\n"
		"refused ('devmig reset' recovers them). Device state only: the guest is the\n"
		"VMM's to resume.\n"
		"\n"
		"After 'devmig migrate' exited 3 (the outcome is unknown), resume the source\n"
		"only once you know the destination is not running.\n"
		"\n"
		"  --socket DEV   a device's vfio-user socket (repeat)\n"
		"  --json         print what each device was and is now as JSON\n");
}

static void reset_usage(FILE *f)
{
	fprintf(f,
		"usage: devmig reset --socket DEV [--socket DEV2 ...] [--json]\n"
		"\n"
		"Reset devices (DEVICE_RESET): they go to RUNNING in their power-on state, any\n"
		"migration session is dropped, and THEIR STATE IS LOST. For a destination left\n"
		"mid-load (RESUMING) or a device in ERROR. Device state only.\n"
		"\n"
		"  --socket DEV   a device's vfio-user socket (repeat)\n"
		"  --json         print what each device was and is now as JSON\n");
}

struct recover_args {
	char *dev[CLI_MAX_DEVICES];
	unsigned n;
	bool json;
};

static int parse(const char *cmd, int argc, char **argv, struct recover_args *a,
		 void (*usage)(FILE *))
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int o;

	memset(a, 0, sizeof(*a));
	while ((o = getopt_long(argc, argv, "s:jh", opts, NULL)) != -1) {
		switch (o) {
		case 's':
			if (a->n == CLI_MAX_DEVICES) {
				fprintf(stderr, "devmig %s: at most %u devices\n", cmd, CLI_MAX_DEVICES);
				return 2;
			}
			a->dev[a->n++] = optarg;
			break;
		case 'j': a->json = true; break;
		case 'h': usage(stdout); return -1;
		default: return 2;
		}
	}
	if (!cli_no_more_args(cmd, argc, argv))
		return 2;
	if (!a->n) {
		fprintf(stderr, "devmig %s: --socket is required (devmig %s --help)\n", cmd, cmd);
		return 2;
	}
	return 0;
}

/* What became of each device: its state before, and why it was refused
 * (NULL: it was not). */
struct outcome {
	const char *was[CLI_MAX_DEVICES], *why[CLI_MAX_DEVICES];
	char reason[CLI_MAX_DEVICES][128];
};

static const char *state_or_unknown(struct devmig_client *c, enum devmig_state *st)
{
	if (devmig_client_get_state(c, st)) {
		*st = DEVMIG_STATE_ERROR;
		return "unknown";
	}
	return devmig_state_name(*st);
}

/* Device i refused a step with r: 1, the reason kept. */
static int refused(struct outcome *out, unsigned i, const char *step, int r)
{
	snprintf(out->reason[i], sizeof(out->reason[i]), "%s: %s", step, strerror(-r));
	out->why[i] = out->reason[i];
	return 1;
}

static void print_result(const char *cmd, const struct recover_args *a,
			 const struct outcome *out, struct devmig_client **c, int rc)
{
	json_object *arr = a->json ? json_object_new_array() : NULL;

	for (unsigned i = 0; i < a->n; i++) {
		enum devmig_state st;
		const char *now = state_or_unknown(c[i], &st);
		if (arr) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "socket", json_object_new_string(a->dev[i]));
			json_object_object_add(o, "was", json_object_new_string(out->was[i]));
			json_object_object_add(o, "now", json_object_new_string(now));
			json_object_object_add(o, "error", out->why[i] ? json_object_new_string(out->why[i])
								      : NULL);
			json_object_array_add(arr, o);
		} else if (out->why[i]) {
			fprintf(stderr, "devmig %s: %s: %s (it is %s)\n", cmd, a->dev[i], out->why[i],
				now);
		} else {
			printf("%s: %s -> %s\n", a->dev[i], out->was[i], now);
		}
	}
	if (arr) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "ok", json_object_new_boolean(rc == 0));
		json_object_object_add(j, "devices", arr);
		cli_print_json(j);
	}
}

/* Every device back to RUNNING, or none touched when one cannot be; 0 or 1. */
static int resume_run(const struct recover_args *a, struct devmig_client **c,
		      struct outcome *out)
{
	enum devmig_state st[CLI_MAX_DEVICES];
	uint64_t caps[CLI_MAX_DEVICES];
	int rc = 0;

	/* Refuse what resume cannot do before touching any device. */
	for (unsigned i = 0; i < a->n; i++) {
		out->was[i] = state_or_unknown(c[i], &st[i]);
		if (devmig_client_mig_caps(c[i], &caps[i]))
			caps[i] = 0;
		if (!strcmp(out->was[i], "unknown"))
			out->why[i] = "its state cannot be read";
		else if (st[i] == DEVMIG_STATE_RESUMING)
			out->why[i] = "RESUMING: a destination mid-load has no state of its own to "
				      "resume ('devmig reset' ends the session)";
		else if (st[i] == DEVMIG_STATE_ERROR)
			out->why[i] = "ERROR: its state is lost; only 'devmig reset' recovers it";
		if (out->why[i])
			rc = 1;
	}
	/* P2P: every device reaches RUNNING_P2P (no DMA to peers yet) before any
	 * one runs, so none sends DMA to a peer that is still stopped. */
	for (unsigned i = 0; !rc && i < a->n; i++) {
		if (!(caps[i] & DEVMIG_MIG_P2P) || st[i] == DEVMIG_STATE_RUNNING ||
		    st[i] == DEVMIG_STATE_PRE_COPY)
			continue;
		int r = devmig_client_set_state(c[i], DEVMIG_STATE_RUNNING_P2P);
		if (r)
			rc = refused(out, i, "-> RUNNING_P2P refused", r);
	}
	for (unsigned i = 0; !rc && i < a->n; i++) {
		int r = devmig_client_set_state(c[i], DEVMIG_STATE_RUNNING);
		if (r)
			rc = refused(out, i, "-> RUNNING refused", r);
	}
	return rc;
}

/* Every device reset; 0, or 1 when one refused. */
static int reset_run(const struct recover_args *a, struct devmig_client **c,
		     struct outcome *out)
{
	int rc = 0;

	for (unsigned i = 0; i < a->n; i++) {
		enum devmig_state st;
		out->was[i] = state_or_unknown(c[i], &st);
		int r = devmig_client_reset(c[i]);
		if (r)
			rc = refused(out, i, "the reset was refused", r);
	}
	return rc;
}

/* Parse, open the devices, run, print. */
static int recover(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
		   int (*run)(const struct recover_args *, struct devmig_client **,
			      struct outcome *))
{
	struct recover_args a;
	struct outcome out = { .why = { NULL } };
	int rc = parse(cmd, argc, argv, &a, usage);

	if (rc)
		return rc < 0 ? 0 : rc;
	struct devmig_client **c = cli_connect_all(cmd, a.dev, a.n, CLI_TIMEOUT_DEFAULT);
	if (!c)
		return 1;
	rc = run(&a, c, &out);
	print_result(cmd, &a, &out, c, rc);
	cli_close_all(c, a.n);
	return rc;
}

int devmig_cmd_resume(int argc, char **argv)
{
	return recover("resume", argc, argv, resume_usage, resume_run);
}

int devmig_cmd_reset(int argc, char **argv)
{
	return recover("reset", argc, argv, reset_usage, reset_run);
}
