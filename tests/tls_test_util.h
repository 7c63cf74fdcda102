/* SPDX-License-Identifier: MIT */
/*
 * Test certificates made at test time with GnuTLS (no private key is ever
 * committed): a CA, and host certificates it signs, as PEM files in a
 * directory. Keys are written mode 0600, as devmig insists.
 */
#ifndef DEVMIG_TESTS_TLS_TEST_UTIL_H
#define DEVMIG_TESTS_TLS_TEST_UTIL_H

#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

struct test_ca {
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
};

static inline int tt_write(const char *path, const void *data, size_t len, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
	if (fd < 0)
		return -1;
	int ok = write(fd, data, len) == (ssize_t)len;
	fchmod(fd, mode);
	close(fd);
	return ok ? 0 : -1;
}

static inline int tt_export(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *crt_path,
			    const char *key_path)
{
	gnutls_datum_t d = { NULL, 0 };
	int rc = gnutls_x509_crt_export2(crt, GNUTLS_X509_FMT_PEM, &d);
	if (!rc)
		rc = tt_write(crt_path, d.data, d.size, 0644);
	gnutls_free(d.data);
	if (!rc && key && key_path) {
		d.data = NULL;
		rc = gnutls_x509_privkey_export2(key, GNUTLS_X509_FMT_PEM, &d);
		if (!rc)
			rc = tt_write(key_path, d.data, d.size, 0600);
		gnutls_free(d.data);
	}
	return rc;
}

static inline int tt_basic(gnutls_x509_crt_t crt, gnutls_x509_privkey_t key, const char *cn,
			   unsigned serial)
{
	unsigned char ser[4] = { (unsigned char)(serial >> 24), (unsigned char)(serial >> 16),
				 (unsigned char)(serial >> 8), (unsigned char)serial };
	time_t now = time(NULL);
	int rc = gnutls_x509_crt_set_version(crt, 3);
	if (!rc)
		rc = gnutls_x509_crt_set_serial(crt, ser, sizeof(ser));
	if (!rc)
		rc = gnutls_x509_crt_set_activation_time(crt, now - 3600);
	if (!rc)
		rc = gnutls_x509_crt_set_expiration_time(crt, now + 86400);
	if (!rc)
		rc = gnutls_x509_crt_set_dn_by_oid(crt, GNUTLS_OID_X520_COMMON_NAME, 0, cn,
						   (unsigned)strlen(cn));
	if (!rc)
		rc = gnutls_x509_crt_set_key(crt, key);
	return rc;
}

/* A self-signed CA; its certificate written to dir/NAME.crt. */
static inline int tt_make_ca(struct test_ca *ca, const char *dir, const char *name)
{
	char crt_path[512];
	int rc = gnutls_x509_crt_init(&ca->crt);
	if (!rc)
		rc = gnutls_x509_privkey_init(&ca->key);
	if (!rc)
		rc = gnutls_x509_privkey_generate(ca->key, GNUTLS_PK_ECDSA,
						  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (!rc)
		rc = tt_basic(ca->crt, ca->key, name, 1);
	if (!rc)
		rc = gnutls_x509_crt_set_basic_constraints(ca->crt, 1, -1);
	if (!rc)
		rc = gnutls_x509_crt_set_key_usage(ca->crt, GNUTLS_KEY_KEY_CERT_SIGN |
								  GNUTLS_KEY_CRL_SIGN);
	if (!rc)
		rc = gnutls_x509_crt_sign2(ca->crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
	snprintf(crt_path, sizeof(crt_path), "%s/%s.crt", dir, name);
	if (!rc)
		rc = tt_export(ca->crt, NULL, crt_path, NULL);
	return rc;
}

static inline void tt_free_ca(struct test_ca *ca)
{
	gnutls_x509_crt_deinit(ca->crt);
	gnutls_x509_privkey_deinit(ca->key);
}

/* A host certificate signed by ca for cn with an IP SAN (ip may be NULL) and a
 * DNS SAN of cn: dir/NAME.crt and dir/NAME.key. */
static inline int tt_make_cert(const struct test_ca *ca, const char *dir, const char *name,
			       const char *cn, const char *ip, unsigned serial)
{
	gnutls_x509_crt_t crt;
	gnutls_x509_privkey_t key;
	char crt_path[512], key_path[512];
	int rc = gnutls_x509_crt_init(&crt);
	if (rc)
		return rc;
	rc = gnutls_x509_privkey_init(&key);
	if (!rc)
		rc = gnutls_x509_privkey_generate(key, GNUTLS_PK_ECDSA,
						  GNUTLS_CURVE_TO_BITS(GNUTLS_ECC_CURVE_SECP256R1), 0);
	if (!rc)
		rc = tt_basic(crt, key, cn, serial);
	if (!rc)
		rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_DNSNAME, cn,
							  (unsigned)strlen(cn), GNUTLS_FSAN_APPEND);
	if (!rc && ip) {
		unsigned char a[4];
		unsigned b0, b1, b2, b3;
		if (sscanf(ip, "%u.%u.%u.%u", &b0, &b1, &b2, &b3) == 4) {
			a[0] = (unsigned char)b0, a[1] = (unsigned char)b1;
			a[2] = (unsigned char)b2, a[3] = (unsigned char)b3;
			rc = gnutls_x509_crt_set_subject_alt_name(crt, GNUTLS_SAN_IPADDRESS, a, 4,
								  GNUTLS_FSAN_APPEND);
		}
	}
	if (!rc)
		rc = gnutls_x509_crt_set_basic_constraints(crt, 0, -1);
	if (!rc)
		rc = gnutls_x509_crt_set_key_usage(crt, GNUTLS_KEY_DIGITAL_SIGNATURE);
	if (!rc)
		rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_SERVER, 0);
	if (!rc)
		rc = gnutls_x509_crt_set_key_purpose_oid(crt, GNUTLS_KP_TLS_WWW_CLIENT, 0);
	if (!rc)
		rc = gnutls_x509_crt_sign2(crt, ca->crt, ca->key, GNUTLS_DIG_SHA256, 0);
	snprintf(crt_path, sizeof(crt_path), "%s/%s.crt", dir, name);
	snprintf(key_path, sizeof(key_path), "%s/%s.key", dir, name);
	if (!rc)
		rc = tt_export(crt, key, crt_path, key_path);
	gnutls_x509_crt_deinit(crt);
	gnutls_x509_privkey_deinit(key);
	return rc;
}

/* A PSK file "IDENTITY:HEX" of n bytes filled with byte b, mode 0600. */
static inline int tt_make_psk(const char *path, const char *identity, unsigned char b, size_t n)
{
	char line[512];
	int l = snprintf(line, sizeof(line), "%s:", identity);
	for (size_t i = 0; i < n && (size_t)l + 3 < sizeof(line); i++)
		l += snprintf(line + l, sizeof(line) - (size_t)l, "%02x", (unsigned)(b + i));
	line[l++] = '\n';
	return tt_write(path, line, (size_t)l, 0600);
}

#endif
