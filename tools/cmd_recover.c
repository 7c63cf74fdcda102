/* SPDX-License-Identifier: MIT */
/* devmig resume / devmig reset: one step back from a failed migration. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_util.h"

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
	if (optind < argc) {
		fprintf(stderr, "devmig %s: unexpected argument '%s'\n", cmd, argv[optind]);
		return 2;
	}
	if (!a->n) {
		fprintf(stderr, "devmig %s: --socket is required (devmig %s --help)\n", cmd, cmd);
		return 2;
	}
	return 0;
}

static const char *state_or_unknown(struct devmig_client *c, enum devmig_state *st)
{
	if (devmig_client_get_state(c, st)) {
		*st = DEVMIG_STATE_ERROR;
		return "unknown";
	}
	return devmig_state_name(*st);
}

static void print_result(const char *cmd, const struct recover_args *a, const char *const *was,
			 struct devmig_client **c, const char *const *why, int rc)
{
	json_object *arr = a->json ? json_object_new_array() : NULL;

	for (unsigned i = 0; i < a->n; i++) {
		enum devmig_state st;
		const char *now = state_or_unknown(c[i], &st);
		if (arr) {
			json_object *o = json_object_new_object();
			json_object_object_add(o, "socket", json_object_new_string(a->dev[i]));
			json_object_object_add(o, "was", json_object_new_string(was[i]));
			json_object_object_add(o, "now", json_object_new_string(now));
			json_object_object_add(o, "error", why[i] ? json_object_new_string(why[i])
								 : NULL);
			json_object_array_add(arr, o);
		} else if (why[i]) {
			fprintf(stderr, "devmig %s: %s: %s (it is %s)\n", cmd, a->dev[i], why[i], now);
		} else {
			printf("%s: %s -> %s\n", a->dev[i], was[i], now);
		}
	}
	if (arr) {
		json_object *j = json_object_new_object();
		json_object_object_add(j, "ok", json_object_new_boolean(rc == 0));
		json_object_object_add(j, "devices", arr);
		cli_print_json(j);
	}
}

int devmig_cmd_resume(int argc, char **argv)
{
	struct recover_args a;
	int rc = parse("resume", argc, argv, &a, resume_usage);
	if (rc)
		return rc < 0 ? 0 : rc;

	struct devmig_client **c = cli_connect_all("resume", a.dev, a.n);
	if (!c)
		return 1;
	const char *was[CLI_MAX_DEVICES], *why[CLI_MAX_DEVICES] = { NULL };
	enum devmig_state st[CLI_MAX_DEVICES];
	uint64_t caps[CLI_MAX_DEVICES];
	char reason[CLI_MAX_DEVICES][128];

	/* Refuse what resume cannot do before touching any device. */
	for (unsigned i = 0; i < a.n; i++) {
		was[i] = state_or_unknown(c[i], &st[i]);
		if (devmig_client_mig_caps(c[i], &caps[i]))
			caps[i] = 0;
		if (!strcmp(was[i], "unknown"))
			why[i] = "its state cannot be read";
		else if (st[i] == DEVMIG_STATE_RESUMING)
			why[i] = "RESUMING: a destination mid-load has no state of its own to resume "
				 "('devmig reset' ends the session)";
		else if (st[i] == DEVMIG_STATE_ERROR)
			why[i] = "ERROR: its state is lost; only 'devmig reset' recovers it";
		if (why[i])
			rc = 1;
	}
	/* P2P: every device reaches RUNNING_P2P (no DMA to peers yet) before any
	 * one runs, so none sends DMA to a peer that is still stopped. */
	for (unsigned i = 0; !rc && i < a.n; i++) {
		if (!(caps[i] & DEVMIG_MIG_P2P) || st[i] == DEVMIG_STATE_RUNNING ||
		    st[i] == DEVMIG_STATE_PRE_COPY)
			continue;
		int r = devmig_client_set_state(c[i], DEVMIG_STATE_RUNNING_P2P);
		if (r) {
			snprintf(reason[i], sizeof(reason[i]), "-> RUNNING_P2P refused: %s",
				 strerror(-r));
			why[i] = reason[i];
			rc = 1;
		}
	}
	for (unsigned i = 0; !rc && i < a.n; i++) {
		int r = devmig_client_set_state(c[i], DEVMIG_STATE_RUNNING);
		if (r) {
			snprintf(reason[i], sizeof(reason[i]), "-> RUNNING refused: %s", strerror(-r));
			why[i] = reason[i];
			rc = 1;
		}
	}
	print_result("resume", &a, was, c, why, rc);
	cli_close_all(c, a.n);
	return rc;
}

int devmig_cmd_reset(int argc, char **argv)
{
	struct recover_args a;
	int rc = parse("reset", argc, argv, &a, reset_usage);
	if (rc)
		return rc < 0 ? 0 : rc;

	struct devmig_client **c = cli_connect_all("reset", a.dev, a.n);
	if (!c)
		return 1;
	const char *was[CLI_MAX_DEVICES], *why[CLI_MAX_DEVICES] = { NULL };
	char reason[CLI_MAX_DEVICES][128];
	for (unsigned i = 0; i < a.n; i++) {
		enum devmig_state st;
		was[i] = state_or_unknown(c[i], &st);
		int r = devmig_client_reset(c[i]);
		if (r) {
			snprintf(reason[i], sizeof(reason[i]), "the reset was refused: %s",
				 strerror(-r));
			why[i] = reason[i];
			rc = 1;
		}
	}
	print_result("reset", &a, was, c, why, rc);
	cli_close_all(c, a.n);
	return rc;
}
