/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * An ops class of an outside project: a "blinker" device with four ops and
 * two implementations, fast and slow. The shared device stores the ID of
 * its implementation; every process calls its own code through it.
 */
#ifndef OUTSIDE_BLINK_H
#define OUTSIDE_BLINK_H

#include <stddef.h>
#include <stdint.h>

#include <mpops/mpops.h>

/* The type of a count the class passes: behind a typedef, as a driver's
 * would be (the signature sees its size and signedness, not its name). */
typedef uint16_t blink_count_t;

struct blink_dev_shared {
	mpops_ops_id_t ops_id;
	uint16_t pad;
	int32_t last_pid;	/* the process whose code ran last */
	uint32_t last_impl;	/* 'F' fast, 'S' slow */
	uint32_t opened;
	uint64_t blinks;
};

#define BLINK_DEVS 2	/* dev[0] is fast's, dev[1] slow's */
struct blink_devs_shared {
	struct blink_dev_shared dev[BLINK_DEVS];
};
#define BLINK_ROOT "blink.devs"

/*
 *  - open: the device is in use by the calling process. 0 or -errno.
 *  - blink: blink @times times. The number of blinks done, or -errno.
 *  - total: every blink of the device so far, or -errno.
 *  - name: the implementation's name and pid into @buf (snprintf's count).
 */
#define BLINK_OPS(OP)                                                        \
	OP(int, open, (struct blink_dev_shared *))                           \
	OP(int, blink, (struct blink_dev_shared *, blink_count_t /* times */)) \
	OP(long, total, (const struct blink_dev_shared *))                   \
	OP(int, name, (char * /* buf */, size_t /* len */))
MPOPS_OPS_CLASS_DECLARE(blink, BLINK_OPS)

MPOPS_OPS_IMPL_DECLARE(blink, fast)
MPOPS_OPS_IMPL_DECLARE(blink, slow)

/* own_strlcpy.c: the project's own strlcpy, behind a function. */
size_t outside_copy_name(char *dst, const char *src, size_t size);

#endif
