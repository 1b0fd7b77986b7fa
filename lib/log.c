/* SPDX-License-Identifier: BSD-3-Clause */
/* Logging through a replaceable callback. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "priv.h"

static const char *level_names[] = { "error", "warning", "info", "debug" };

static void log_default(enum mpops_log_level level, const char *line, void *arg)
{
	(void)arg;
	fprintf(stderr, "mpops: %s: %s\n", level_names[level], line);
}

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static mpops_log_fn log_fn = log_default;
static void *log_arg;
static _Atomic int log_level = -1;

void mpops_log_set(mpops_log_fn fn, void *arg)
{
	pthread_mutex_lock(&log_mu);
	log_fn = fn ? fn : log_default;
	log_arg = fn ? arg : NULL;
	pthread_mutex_unlock(&log_mu);
}

void mpops_log_set_level(enum mpops_log_level level)
{
	atomic_store(&log_level, (int)level);
}

static int level_now(void)
{
	int l = atomic_load(&log_level);
	if (l >= 0)
		return l;
	const char *env = getenv("MPOPS_LOG_LEVEL");
	l = MPOPS_LOG_INFO;
	if (env && env[0] >= '0' && env[0] <= '3' && env[1] == '\0')
		l = env[0] - '0';
	atomic_store(&log_level, l);
	return l;
}

void mpops_log(enum mpops_log_level level, const char *fmt, ...)
{
	char line[512];
	va_list ap;

	if ((int)level > level_now() || (int)level < 0)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	/* The callback runs under the lock so a replaced callback's argument
	 * is never used after mpops_log_set() returned. */
	pthread_mutex_lock(&log_mu);
	log_fn(level, line, log_arg);
	pthread_mutex_unlock(&log_mu);
}
