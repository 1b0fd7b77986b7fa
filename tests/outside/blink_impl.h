/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * One blink implementation per file that includes this: BLINK_IMPL(name,
 * code, step) defines its ops (each blink counts @step) and registers it.
 */
#ifndef OUTSIDE_BLINK_IMPL_H
#define OUTSIDE_BLINK_IMPL_H

#include <stdio.h>
#include <unistd.h>

#include "blink.h"

#define BLINK_IMPL(nm, code, step)                                           \
	static int nm##_open(struct blink_dev_shared *d)                     \
	{                                                                    \
		d->opened++;                                                 \
		d->last_pid = getpid();                                      \
		d->last_impl = (code);                                       \
		return 0;                                                    \
	}                                                                    \
	static int nm##_blink(struct blink_dev_shared *d, blink_count_t times) \
	{                                                                    \
		d->blinks += (uint64_t)times * (step);                       \
		d->last_pid = getpid();                                      \
		d->last_impl = (code);                                       \
		return times;                                                \
	}                                                                    \
	static long nm##_total(const struct blink_dev_shared *d)             \
	{                                                                    \
		return (long)d->blinks;                                      \
	}                                                                    \
	static int nm##_name(char *buf, size_t len)                          \
	{                                                                    \
		return snprintf(buf, len, "%s@%d", #nm, (int)getpid());      \
	}                                                                    \
	static const struct blink_ops nm##_ops = {                           \
		.open = nm##_open, .blink = nm##_blink,                      \
		.total = nm##_total, .name = nm##_name,                      \
	};                                                                   \
	MPOPS_OPS_IMPL(blink, nm, &nm##_ops)

#endif
