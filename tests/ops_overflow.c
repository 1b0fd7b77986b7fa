/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * ops-overflow: a program with 257 implementations at load time, one more
 * than a process can register. Its constructors must not print anything
 * (main() has not installed a log callback yet); the bind must log the
 * failure through the callback main() installs, and fail with -ENOSPC.
 * Prints "main", then every log line as "log: ...", then "bind=RC".
 */
#include <stdio.h>
#include <stdlib.h>

#include "demo_ops.h"

static int note(struct demo_dev_shared *dev, demo_queue_t q)
{
	(void)q;
	dev->calls++;
	return 0;
}

static int ident(char *buf, size_t len)
{
	return snprintf(buf, len, "overflow");
}

static const struct demo_ops ops = { .notify = note, .ident = ident };

#define ONE(n) MPOPS_OPS_IMPL(demo, i##n, &ops)
#define X4(p) ONE(p##0) ONE(p##1) ONE(p##2) ONE(p##3)
#define X16(p) X4(p##0) X4(p##1) X4(p##2) X4(p##3)
#define X64(p) X16(p##0) X16(p##1) X16(p##2) X16(p##3)
X64(0) X64(1) X64(2) X64(3)
ONE(last)

static void log_out(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	printf("log: %s\n", line);
}

int main(void)
{
	size_t len = (mpops_ops_table_size() + 63) & ~(size_t)63;
	void *tbl = aligned_alloc(64, len);
	int rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("main\n");
	mpops_log_set(log_out, NULL);
	if (!tbl || mpops_ops_table_init(tbl, len) < 0)
		return 1;
	rc = mpops_ops_bind(tbl, 0);
	printf("bind=%d\n", rc);
	if (rc == 0)
		mpops_ops_unbind(tbl);
	free(tbl);
	return 0;
}
