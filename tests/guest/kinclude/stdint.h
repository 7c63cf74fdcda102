/* SPDX-License-Identifier: MIT */
/* memblk_hw.h is shared with user space: inside the kernel, its <stdint.h> is this. */
#include <linux/types.h>
