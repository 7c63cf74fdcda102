/* SPDX-License-Identifier: MIT */
/* A shared object that is no variant: it has no devmig_variant_entry(). */
int devmig_test_not_a_variant(void);

int devmig_test_not_a_variant(void)
{
	return 42;
}
