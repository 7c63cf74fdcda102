/* placeholder replaced by the exhaustive test */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include "devmig/migration.h"
static void t_names(void **s) { (void)s; assert_string_equal(devmig_state_name(5), "RUNNING_P2P"); }
int main(void) { const struct CMUnitTest t[] = { cmocka_unit_test(t_names) }; return cmocka_run_group_tests(t, NULL, NULL); }
