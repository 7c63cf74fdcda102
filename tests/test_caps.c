/* SPDX-License-Identifier: MIT */
/*
 * VERSION capabilities (lib/wire_caps.c): JSON parsing with defaults,
 * unknown members, types and ranges; formatting; negotiation on the server
 * and the client's check of the reply.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "devmig/wire.h"

#define W(x) DEVMIG_WIRE_##x

/* Parse text held in an exactly-sized, unterminated malloc. */
static enum devmig_wire_err parse(const char *text, struct devmig_caps *out)
{
	size_t n = strlen(text);
	char *b = malloc(n ? n : 1);
	enum devmig_wire_err err;

	assert_non_null(b);
	memcpy(b, text, n);
	err = devmig_caps_parse(b, n, out);
	free(b);
	return err;
}

static void assert_caps_equal(const struct devmig_caps *a, const struct devmig_caps *b)
{
	assert_int_equal(a->max_msg_fds, b->max_msg_fds);
	assert_int_equal(a->max_data_xfer_size, b->max_data_xfer_size);
	assert_int_equal(a->max_dma_maps, b->max_dma_maps);
	assert_int_equal(a->pgsizes, b->pgsizes);
	assert_int_equal(a->write_multiple, b->write_multiple);
	assert_int_equal(a->twin_socket, b->twin_socket);
	assert_int_equal(a->ext, b->ext);
	assert_int_equal(a->migration, b->migration);
	assert_int_equal(a->mig_pgsize, b->mig_pgsize);
	assert_int_equal(a->mig_max_bitmap_size, b->mig_max_bitmap_size);
}

static void assert_defaults(const struct devmig_caps *c)
{
	assert_int_equal(c->max_msg_fds, 1);
	assert_int_equal(c->max_data_xfer_size, 1048576);
	assert_int_equal(c->max_dma_maps, 65535);
	assert_int_equal(c->pgsizes, 4096);
	assert_false(c->write_multiple);
	assert_false(c->twin_socket);
	assert_int_equal(c->ext, 0);
	assert_false(c->migration);
	assert_int_equal(c->mig_pgsize, 4096);
	assert_int_equal(c->mig_max_bitmap_size, 256u << 20);
}

static void expect_json_error(const char *text)
{
	struct devmig_caps c;

	if (parse(text, &c) != W(E_JSON))
		fail_msg("accepted: %s", text);
}

/* ---- defaults ---- */

static void caps_default_is_the_specification(void **state)
{
	struct devmig_caps c;

	(void)state;
	memset(&c, 0xff, sizeof(c));
	devmig_caps_default(&c);
	assert_defaults(&c);
}

static void parse_null_json_gives_defaults(void **state)
{
	struct devmig_caps c;

	(void)state;
	memset(&c, 0xff, sizeof(c));
	assert_int_equal(devmig_caps_parse(NULL, 0, &c), W(OK));
	assert_defaults(&c);
}

static void parse_zero_length_gives_defaults(void **state)
{
	struct devmig_caps c;

	(void)state;
	memset(&c, 0xff, sizeof(c));
	assert_int_equal(devmig_caps_parse("garbage", 0, &c), W(OK));
	assert_defaults(&c);
}

static void parse_empty_object_gives_defaults(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{}", &c), W(OK));
	assert_defaults(&c);
	assert_int_equal(parse("{\"capabilities\":{}}", &c), W(OK));
	assert_defaults(&c);
}

static void parse_reads_every_member(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":16,\"max_data_xfer_size\":65536,"
			       "\"max_dma_maps\":128,\"pgsizes\":2101248,\"write_multiple\":true,"
			       "\"twin_socket\":{\"supported\":true},"
			       "\"devmig\":{\"precopy_info\":true}}}", &c),
			 W(OK));
	assert_int_equal(c.max_msg_fds, 16);
	assert_int_equal(c.max_data_xfer_size, 65536);
	assert_int_equal(c.max_dma_maps, 128);
	assert_int_equal(c.pgsizes, 4096 | (2 << 20));
	assert_true(c.write_multiple);
	assert_true(c.twin_socket);
	assert_int_equal(c.ext, DEVMIG_EXT_PRECOPY_INFO);
}

static void parse_absent_members_keep_defaults(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":4}}", &c), W(OK));
	assert_int_equal(c.max_msg_fds, 4);
	c.max_msg_fds = 1;
	assert_defaults(&c);
}

static void parse_ignores_unknown_members_at_every_level(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"x\":[1,2,{\"y\":null}],\"capabilities\":{\"migration\":"
			       "{\"pgsize\":4096,\"max_bitmap_size\":1048576},\"future\":\"yes\","
			       "\"twin_socket\":{\"supported\":false,\"fd_index\":3},"
			       "\"devmig\":{\"precopy_info\":false,\"later\":1.5},"
			       "\"write_multiple\":true},\"version\":7}", &c),
			 W(OK));
	assert_true(c.write_multiple);
	assert_false(c.twin_socket);
	assert_int_equal(c.ext, 0);
	assert_int_equal(c.max_msg_fds, 1);
}

static void parse_twin_socket_without_supported_is_false(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"capabilities\":{\"twin_socket\":{}}}", &c), W(OK));
	assert_false(c.twin_socket);
}

static void parse_accepts_surrounding_white_space(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse(" \n{\"capabilities\" : { \"max_msg_fds\" : 2 } }\r\n\t ", &c), W(OK));
	assert_int_equal(c.max_msg_fds, 2);
}

static void parse_accepts_range_limits(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":0,\"max_data_xfer_size\":1,"
			       "\"max_dma_maps\":0,\"pgsizes\":4096}}", &c),
			 W(OK));
	assert_int_equal(c.max_msg_fds, 0);
	assert_int_equal(c.max_data_xfer_size, 1);
	assert_int_equal(c.max_dma_maps, 0);
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":1024,\"max_data_xfer_size\":4294967295,"
			       "\"max_dma_maps\":4294967295,\"pgsizes\":18446744073709547520}}", &c),
			 W(OK));
	assert_int_equal(c.max_msg_fds, 1024);
	assert_int_equal(c.max_data_xfer_size, UINT32_MAX);
	assert_int_equal(c.max_dma_maps, UINT32_MAX);
	assert_int_equal(c.pgsizes, 0xfffffffffffff000ull);
}

static void parse_failure_leaves_defaults(void **state)
{
	struct devmig_caps c;

	(void)state;
	memset(&c, 0xff, sizeof(c));
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":3,\"pgsizes\":1}}", &c), W(E_JSON));
	assert_defaults(&c);
}

/* ---- refusals ---- */

static void parse_refuses_malformed_text(void **state)
{
	(void)state;
	expect_json_error("{");
	expect_json_error("{\"capabilities\":");
	expect_json_error("{\"a\":}");
	expect_json_error("{\"a\":1,}");
	expect_json_error("{\"a\" 1}");
	expect_json_error("{\"a\":01}");
	expect_json_error("nonsense");
}

static void parse_refuses_trailing_garbage(void **state)
{
	(void)state;
	expect_json_error("{} x");
	expect_json_error("{}{}");
	expect_json_error("{},");
	expect_json_error("{}]");
}

static void parse_refuses_non_object_root(void **state)
{
	(void)state;
	expect_json_error("[]");
	expect_json_error("[{\"capabilities\":{}}]");
	expect_json_error("1");
	expect_json_error("\"capabilities\"");
	expect_json_error("null");
	expect_json_error("true");
}

static void parse_refuses_non_object_capabilities(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":[]}");
	expect_json_error("{\"capabilities\":null}");
	expect_json_error("{\"capabilities\":1}");
	expect_json_error("{\"capabilities\":\"{}\"}");
}

static void parse_refuses_embedded_nul(void **state)
{
	static const char text[] = "{\"capabilities\":{}}\0{}";
	struct devmig_caps c;
	char *b = malloc(sizeof(text) - 1);

	(void)state;
	memcpy(b, text, sizeof(text) - 1);
	assert_int_equal(devmig_caps_parse(b, sizeof(text) - 1, &c), W(E_JSON));
	free(b);
}

static void parse_stops_at_json_len(void **state)
{
	static const char text[] = "{\"capabilities\":{}}";
	struct devmig_caps c;

	(void)state;
	/* A prefix of a valid text is incomplete. */
	assert_int_equal(devmig_caps_parse(text, sizeof(text) - 2, &c), W(E_JSON));
	assert_int_equal(devmig_caps_parse(text, sizeof(text) - 1, &c), W(OK));
}

static void parse_refuses_deep_nesting(void **state)
{
	char text[256];
	size_t n = 0;

	(void)state;
	n += (size_t)snprintf(text + n, sizeof(text) - n, "{\"x\":");
	for (int i = 0; i < 40; i++)
		text[n++] = '[';
	for (int i = 0; i < 40; i++)
		text[n++] = ']';
	text[n++] = '}';
	text[n] = '\0';
	expect_json_error(text);
}

static void parse_refuses_max_msg_fds_wrong_type(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":\"1\"}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":true}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":1.0}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":null}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":{}}}");
}

static void parse_refuses_max_msg_fds_out_of_range(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":-1}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":1025}}");
	expect_json_error("{\"capabilities\":{\"max_msg_fds\":4294967297}}");
}

static void parse_refuses_max_data_xfer_size_zero(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"max_data_xfer_size\":0}}");
}

static void parse_refuses_max_data_xfer_size_out_of_range(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"max_data_xfer_size\":4294967296}}");
	expect_json_error("{\"capabilities\":{\"max_data_xfer_size\":-4096}}");
	expect_json_error("{\"capabilities\":{\"max_data_xfer_size\":1e6}}");
}

static void parse_refuses_max_dma_maps_out_of_range(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"max_dma_maps\":-1}}");
	expect_json_error("{\"capabilities\":{\"max_dma_maps\":4294967296}}");
	expect_json_error("{\"capabilities\":{\"max_dma_maps\":\"many\"}}");
}

static void parse_refuses_pgsizes_without_page_bit(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"pgsizes\":0}}");
	expect_json_error("{\"capabilities\":{\"pgsizes\":2048}}");
	expect_json_error("{\"capabilities\":{\"pgsizes\":4097}}");
	expect_json_error("{\"capabilities\":{\"pgsizes\":-4096}}");
	/* Beyond 2^64: json-c saturates to all ones, which has low bits. */
	expect_json_error("{\"capabilities\":{\"pgsizes\":36893488147419103232}}");
	expect_json_error("{\"capabilities\":{\"pgsizes\":\"4096\"}}");
	expect_json_error("{\"capabilities\":{\"pgsizes\":4096.0}}");
}

static void parse_refuses_write_multiple_not_bool(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"write_multiple\":1}}");
	expect_json_error("{\"capabilities\":{\"write_multiple\":\"true\"}}");
	expect_json_error("{\"capabilities\":{\"write_multiple\":null}}");
}

static void parse_refuses_twin_socket_wrong_type(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"twin_socket\":true}}");
	expect_json_error("{\"capabilities\":{\"twin_socket\":{\"supported\":1}}}");
}

static void parse_refuses_devmig_wrong_type(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"devmig\":true}}");
	expect_json_error("{\"capabilities\":{\"devmig\":[]}}");
	expect_json_error("{\"capabilities\":{\"devmig\":{\"precopy_info\":\"yes\"}}}");
	expect_json_error("{\"capabilities\":{\"devmig\":{\"precopy_info\":1}}}");
}

/* ---- "migration": {"pgsize", "max_bitmap_size"} ---- */

static void parse_migration_members(void **state)
{
	struct devmig_caps c;

	(void)state;
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":65536,"
			       "\"max_bitmap_size\":1048576}}}",
			       &c),
			 W(OK));
	assert_true(c.migration);
	assert_int_equal(c.mig_pgsize, 65536);
	assert_int_equal(c.mig_max_bitmap_size, 1048576);
	/* libvfio-user sends pgsize alone; unknown members are ignored */
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{\"pgsize\":4096,\"x\":[1]}}}",
			       &c),
			 W(OK));
	assert_true(c.migration);
	assert_int_equal(c.mig_max_bitmap_size, 256u << 20);
	/* an empty object still says: migration supported, with the defaults */
	assert_int_equal(parse("{\"capabilities\":{\"migration\":{}}}", &c), W(OK));
	assert_true(c.migration);
	assert_int_equal(c.mig_pgsize, 4096);
	/* absent: not supported */
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":2}}", &c), W(OK));
	assert_false(c.migration);
}

static void parse_refuses_bad_migration(void **state)
{
	(void)state;
	expect_json_error("{\"capabilities\":{\"migration\":true}}");
	expect_json_error("{\"capabilities\":{\"migration\":[]}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"pgsize\":\"4096\"}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"pgsize\":2048}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"pgsize\":12288}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"pgsize\":-4096}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"pgsize\":18446744073709551616}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"max_bitmap_size\":0}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"max_bitmap_size\":1.5}}}");
	expect_json_error("{\"capabilities\":{\"migration\":{\"max_bitmap_size\":"
			  "18446744073709551615}}}");
}

static void format_migration_round_trips(void **state)
{
	struct devmig_caps c, p;
	char buf[512];

	(void)state;
	devmig_caps_default(&c);
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "migration"));
	c.migration = true;
	c.mig_pgsize = 1ull << 21;
	c.mig_max_bitmap_size = 12345;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"migration\":{\"pgsize\":2097152,\"max_bitmap_size\":12345}"));
	assert_int_equal(parse(buf, &p), W(OK));
	assert_caps_equal(&c, &p);
}

static void negotiate_migration_both_sides_smaller_values(void **state)
{
	struct devmig_caps prop, sup, r;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	sup.migration = true;
	sup.mig_pgsize = 4096;
	sup.mig_max_bitmap_size = 1u << 20;
	/* a client that did not propose it does not get it */
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_false(r.migration);
	/* QEMU proposes pgsize 4096 and 256 MiB */
	prop.migration = true;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_true(r.migration);
	assert_int_equal(r.mig_pgsize, 4096);
	assert_int_equal(r.mig_max_bitmap_size, 1u << 20);
	prop.mig_pgsize = 65536;
	prop.mig_max_bitmap_size = 4096;
	sup.mig_pgsize = 1u << 21;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_int_equal(r.mig_pgsize, 65536);
	assert_int_equal(r.mig_max_bitmap_size, 4096);
	/* a device that cannot migrate does not say it can */
	sup.migration = false;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_false(r.migration);
}

static void check_reply_takes_migration_even_unproposed(void **state)
{
	struct devmig_caps prop, rep;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&rep);
	rep.migration = true;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	prop.migration = true;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
}

/* ---- formatting ---- */

static void format_defaults_round_trips(void **state)
{
	struct devmig_caps c, p;
	char buf[512];
	size_t n;

	(void)state;
	devmig_caps_default(&c);
	n = devmig_caps_format(&c, buf, sizeof(buf));
	assert_int_equal(n, strlen(buf));
	assert_null(strstr(buf, "devmig"));
	assert_null(strstr(buf, "twin_socket"));
	assert_int_equal(parse(buf, &p), W(OK));
	assert_caps_equal(&c, &p);
}

static void format_every_member_round_trips(void **state)
{
	struct devmig_caps c = { .max_msg_fds = 1024, .max_data_xfer_size = UINT32_MAX,
				 .max_dma_maps = 7, .pgsizes = 0xfffffffffffff000ull,
				 .write_multiple = true, .twin_socket = true,
				 .ext = DEVMIG_EXT_PRECOPY_INFO, .migration = true,
				 .mig_pgsize = 8192, .mig_max_bitmap_size = 77 },
			   p;
	char buf[512];

	(void)state;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"devmig\":{\"precopy_info\":true}"));
	assert_non_null(strstr(buf, "\"twin_socket\":{\"supported\":true}"));
	assert_int_equal(parse(buf, &p), W(OK));
	assert_caps_equal(&c, &p);
}

static void format_omits_unknown_extension_bits(void **state)
{
	struct devmig_caps c;
	char buf[512];

	(void)state;
	devmig_caps_default(&c);
	c.ext = 1u << 7;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_null(strstr(buf, "devmig"));
}

static void format_cap_too_small_returns_zero(void **state)
{
	struct devmig_caps c;
	char buf[512];
	size_t n;

	(void)state;
	devmig_caps_default(&c);
	n = devmig_caps_format(&c, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(devmig_caps_format(&c, buf, n + 1), n);
	assert_int_equal(buf[n], '\0');
	assert_int_equal(devmig_caps_format(&c, buf, n), 0);
	assert_int_equal(devmig_caps_format(&c, NULL, 0), 0);
}

/* ---- negotiation ---- */

static void negotiate_intersects_booleans_and_extensions(void **state)
{
	struct devmig_caps prop, sup, r;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	prop.write_multiple = true;
	prop.twin_socket = true;
	prop.ext = DEVMIG_EXT_PRECOPY_INFO | (1u << 30);
	sup.write_multiple = false;
	sup.twin_socket = false;
	sup.ext = DEVMIG_EXT_ALL;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_false(r.write_multiple);
	assert_false(r.twin_socket);
	assert_int_equal(r.ext, DEVMIG_EXT_PRECOPY_INFO);

	sup.write_multiple = true;
	prop.ext = 0;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_true(r.write_multiple);
	assert_int_equal(r.ext, 0);
}

static void negotiate_numeric_limits_are_the_servers(void **state)
{
	struct devmig_caps prop, sup, r;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	prop.max_msg_fds = 64;
	prop.max_data_xfer_size = 4096;
	prop.max_dma_maps = 1;
	sup.max_msg_fds = 8;
	sup.max_data_xfer_size = 1u << 22;
	sup.max_dma_maps = 1000;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_int_equal(r.max_msg_fds, 8);
	assert_int_equal(r.max_data_xfer_size, 1u << 22);
	assert_int_equal(r.max_dma_maps, 1000);
}

static void negotiate_pgsizes_is_the_intersection(void **state)
{
	struct devmig_caps prop, sup, r;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	prop.pgsizes = 4096 | (2u << 20);
	sup.pgsizes = (2u << 20) | (1u << 30);
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_int_equal(r.pgsizes, 2u << 20);
}

static void negotiate_refuses_empty_pgsizes(void **state)
{
	struct devmig_caps prop, sup, r;

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	sup.pgsizes = 1u << 16;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(E_VERSION));
}

static void check_reply_accepts_negotiated_caps(void **state)
{
	struct devmig_caps prop, sup, r, parsed;
	char buf[512];

	(void)state;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	prop.write_multiple = true;
	prop.ext = DEVMIG_EXT_PRECOPY_INFO;
	prop.pgsizes = 4096 | (2u << 20);
	sup.ext = DEVMIG_EXT_ALL;
	sup.write_multiple = true;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_true(devmig_caps_format(&r, buf, sizeof(buf)) > 0);
	assert_int_equal(parse(buf, &parsed), W(OK));
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &parsed), W(OK));
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 0, &parsed), W(OK));
}

static void check_reply_refuses_other_major(void **state)
{
	struct devmig_caps c;

	(void)state;
	devmig_caps_default(&c);
	assert_int_equal(devmig_version_check_reply(0, 1, &c, 1, 0, &c), W(E_VERSION));
	assert_int_equal(devmig_version_check_reply(1, 0, &c, 0, 0, &c), W(E_VERSION));
}

static void check_reply_refuses_higher_minor(void **state)
{
	struct devmig_caps c;

	(void)state;
	devmig_caps_default(&c);
	assert_int_equal(devmig_version_check_reply(0, 1, &c, 0, 2, &c), W(E_VERSION));
}

/*
 * A reply with members we did not propose is accepted; what we may use is
 * only what both said (libvfio-user adds "migration", a server may offer a
 * boolean or extension nobody asked for).
 */
static void check_reply_accepts_unproposed_write_multiple_but_it_is_not_used(void **state)
{
	struct devmig_caps prop, rep, use;

	(void)state;
	devmig_caps_default(&prop);
	rep = prop;
	rep.write_multiple = true;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	devmig_caps_usable(&prop, &rep, &use);
	assert_false(use.write_multiple);
	prop.write_multiple = true;
	devmig_caps_usable(&prop, &rep, &use);
	assert_true(use.write_multiple);
}

static void check_reply_accepts_unproposed_twin_socket_but_it_is_not_used(void **state)
{
	struct devmig_caps prop, rep, use;

	(void)state;
	devmig_caps_default(&prop);
	rep = prop;
	rep.twin_socket = true;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	devmig_caps_usable(&prop, &rep, &use);
	assert_false(use.twin_socket);
}

static void check_reply_accepts_unproposed_extension_but_it_is_not_used(void **state)
{
	struct devmig_caps prop, rep, use;

	(void)state;
	devmig_caps_default(&prop);
	prop.ext = DEVMIG_EXT_COMPAT;
	rep = prop;
	rep.ext = DEVMIG_EXT_PRECOPY_INFO | DEVMIG_EXT_COMPAT;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	devmig_caps_usable(&prop, &rep, &use);
	assert_int_equal(use.ext, DEVMIG_EXT_COMPAT);
}

static void check_reply_pgsizes_must_share_one_with_ours(void **state)
{
	struct devmig_caps prop, rep, use;

	(void)state;
	devmig_caps_default(&prop);
	rep = prop;
	rep.pgsizes = 4096 | (2u << 20);
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	devmig_caps_usable(&prop, &rep, &use);
	assert_int_equal(use.pgsizes, 4096);
	rep.pgsizes = 2u << 20;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(E_VERSION));
	rep.pgsizes = 0;
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(E_VERSION));
}

/* libvfio-user's server reply, verbatim in shape: an unknown "migration" member. */
static void libvfio_user_reply_is_accepted_and_its_limits_used(void **state)
{
	struct devmig_caps prop, rep, use;

	(void)state;
	devmig_caps_default(&prop);
	prop.ext = DEVMIG_EXT_ALL;
	assert_int_equal(parse("{\"capabilities\":{\"max_msg_fds\":8,"
			       "\"max_data_xfer_size\":1048576,"
			       "\"migration\":{\"pgsize\":4096}}}", &rep),
			 W(OK));
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
	devmig_caps_usable(&prop, &rep, &use);
	assert_int_equal(use.max_msg_fds, 8);
	assert_int_equal(use.max_data_xfer_size, 1048576);
	assert_int_equal(use.ext, 0);
	assert_int_equal(use.pgsizes, 4096);
}

static void exact_mig_read_extension_round_trips(void **state)
{
	struct devmig_caps c, back;
	char buf[512];

	(void)state;
	devmig_caps_default(&c);
	c.ext = DEVMIG_EXT_EXACT_MIG_READ;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"exact_mig_read\":true"));
	assert_int_equal(parse(buf, &back), W(OK));
	assert_int_equal(back.ext, DEVMIG_EXT_EXACT_MIG_READ);
	c.ext = DEVMIG_EXT_ALL;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_int_equal(parse(buf, &back), W(OK));
	assert_int_equal(back.ext, DEVMIG_EXT_ALL);
}

static void deadline_and_dirty_rate_extensions_round_trip(void **state)
{
	struct devmig_caps c, back;
	char buf[512];

	(void)state;
	devmig_caps_default(&c);
	c.ext = DEVMIG_EXT_DEADLINE;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"devmig\":{\"deadline\":true}"));
	assert_int_equal(parse(buf, &back), W(OK));
	assert_int_equal(back.ext, DEVMIG_EXT_DEADLINE);
	c.ext = DEVMIG_EXT_DIRTY_RATE;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "\"devmig\":{\"dirty_rate\":true}"));
	assert_int_equal(parse(buf, &back), W(OK));
	assert_int_equal(back.ext, DEVMIG_EXT_DIRTY_RATE);
	/* Asked by the client but not offered: not in the reply. */
	struct devmig_caps prop, sup, r;
	devmig_caps_default(&prop);
	devmig_caps_default(&sup);
	prop.ext = DEVMIG_EXT_ALL;
	sup.ext = DEVMIG_EXT_ALL & ~DEVMIG_EXT_DIRTY_RATE;
	assert_int_equal(devmig_caps_negotiate(&prop, &sup, &r), W(OK));
	assert_true(r.ext & DEVMIG_EXT_DEADLINE);
	assert_false(r.ext & DEVMIG_EXT_DIRTY_RATE);
	/* Every extension at once fits the VERSION buffer's size. */
	c.ext = DEVMIG_EXT_ALL;
	c.migration = true;
	c.write_multiple = true;
	c.twin_socket = true;
	c.max_data_xfer_size = UINT32_MAX;
	c.max_dma_maps = UINT32_MAX;
	c.max_msg_fds = 1024;
	c.pgsizes = UINT64_MAX & ~4095ull;
	c.mig_pgsize = 1ull << 62;
	c.mig_max_bitmap_size = UINT64_MAX - 1;
	assert_true(devmig_caps_format(&c, buf, sizeof(buf)) > 0);
	assert_int_equal(parse(buf, &back), W(OK));
	assert_int_equal(back.ext, DEVMIG_EXT_ALL);
}

static void check_reply_accepts_fewer_features_than_proposed(void **state)
{
	struct devmig_caps prop, rep;

	(void)state;
	devmig_caps_default(&prop);
	prop.write_multiple = true;
	prop.ext = DEVMIG_EXT_PRECOPY_INFO;
	prop.pgsizes = 4096 | (2u << 20);
	devmig_caps_default(&rep);
	rep.max_data_xfer_size = 1u << 24; /* the server's own limit: not checked */
	assert_int_equal(devmig_version_check_reply(0, 1, &prop, 0, 1, &rep), W(OK));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(caps_default_is_the_specification),
		cmocka_unit_test(parse_null_json_gives_defaults),
		cmocka_unit_test(parse_zero_length_gives_defaults),
		cmocka_unit_test(parse_empty_object_gives_defaults),
		cmocka_unit_test(parse_reads_every_member),
		cmocka_unit_test(parse_absent_members_keep_defaults),
		cmocka_unit_test(parse_ignores_unknown_members_at_every_level),
		cmocka_unit_test(parse_twin_socket_without_supported_is_false),
		cmocka_unit_test(parse_accepts_surrounding_white_space),
		cmocka_unit_test(parse_accepts_range_limits),
		cmocka_unit_test(parse_failure_leaves_defaults),
		cmocka_unit_test(parse_refuses_malformed_text),
		cmocka_unit_test(parse_refuses_trailing_garbage),
		cmocka_unit_test(parse_refuses_non_object_root),
		cmocka_unit_test(parse_refuses_non_object_capabilities),
		cmocka_unit_test(parse_refuses_embedded_nul),
		cmocka_unit_test(parse_stops_at_json_len),
		cmocka_unit_test(parse_refuses_deep_nesting),
		cmocka_unit_test(parse_refuses_max_msg_fds_wrong_type),
		cmocka_unit_test(parse_refuses_max_msg_fds_out_of_range),
		cmocka_unit_test(parse_refuses_max_data_xfer_size_zero),
		cmocka_unit_test(parse_refuses_max_data_xfer_size_out_of_range),
		cmocka_unit_test(parse_refuses_max_dma_maps_out_of_range),
		cmocka_unit_test(parse_refuses_pgsizes_without_page_bit),
		cmocka_unit_test(parse_refuses_write_multiple_not_bool),
		cmocka_unit_test(parse_refuses_twin_socket_wrong_type),
		cmocka_unit_test(parse_refuses_devmig_wrong_type),
		cmocka_unit_test(parse_migration_members),
		cmocka_unit_test(parse_refuses_bad_migration),
		cmocka_unit_test(format_migration_round_trips),
		cmocka_unit_test(negotiate_migration_both_sides_smaller_values),
		cmocka_unit_test(check_reply_takes_migration_even_unproposed),
		cmocka_unit_test(format_defaults_round_trips),
		cmocka_unit_test(format_every_member_round_trips),
		cmocka_unit_test(format_omits_unknown_extension_bits),
		cmocka_unit_test(format_cap_too_small_returns_zero),
		cmocka_unit_test(negotiate_intersects_booleans_and_extensions),
		cmocka_unit_test(negotiate_numeric_limits_are_the_servers),
		cmocka_unit_test(negotiate_pgsizes_is_the_intersection),
		cmocka_unit_test(negotiate_refuses_empty_pgsizes),
		cmocka_unit_test(check_reply_accepts_negotiated_caps),
		cmocka_unit_test(check_reply_refuses_other_major),
		cmocka_unit_test(check_reply_refuses_higher_minor),
		cmocka_unit_test(check_reply_accepts_unproposed_write_multiple_but_it_is_not_used),
		cmocka_unit_test(check_reply_accepts_unproposed_twin_socket_but_it_is_not_used),
		cmocka_unit_test(check_reply_accepts_unproposed_extension_but_it_is_not_used),
		cmocka_unit_test(check_reply_pgsizes_must_share_one_with_ours),
		cmocka_unit_test(libvfio_user_reply_is_accepted_and_its_limits_used),
		cmocka_unit_test(exact_mig_read_extension_round_trips),
		cmocka_unit_test(deadline_and_dirty_rate_extensions_round_trip),
		cmocka_unit_test(check_reply_accepts_fewer_features_than_proposed),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
