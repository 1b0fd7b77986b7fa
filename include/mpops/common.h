/* SPDX-License-Identifier: BSD-3-Clause */
/**
 * @file common.h
 * Conventions shared by every mpops header: export macro, error convention,
 * logging.
 *
 * Every function that can fail returns 0 (or a non-negative count) on
 * success and a negative errno on failure. Each failure logs exactly one
 * line through the log callback, saying what was wrong and what to do.
 */
#ifndef MPOPS_COMMON_H
#define MPOPS_COMMON_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(MPOPS_BUILDING_LIB)
#define MPOPS_API __attribute__((visibility("default")))
#else
#define MPOPS_API
#endif

/** Version of the layout of every *_shared struct. A region created by a
 *  primary with another ABI version is rejected at attach with -EPROTO. */
#define MPOPS_ABI_VERSION 2

/** Log levels, lowest is most severe. */
enum mpops_log_level {
	MPOPS_LOG_ERR = 0,
	MPOPS_LOG_WARN = 1,
	MPOPS_LOG_INFO = 2,
	MPOPS_LOG_DEBUG = 3,
};

/**
 * Log callback. @p line is one complete line without a trailing newline.
 * May be called from any thread of the process, including the primary's
 * control-channel thread; it must be thread-safe and must not call back
 * into mpops (calls are serialised under a lock).
 */
typedef void (*mpops_log_fn)(enum mpops_log_level level, const char *line,
			     void *arg);

/**
 * Replace the log callback of this process (default: print
 * "mpops: <line>" to stderr for levels up to the threshold). Pass NULL to
 * restore the default. Any thread; takes effect for later messages.
 */
MPOPS_API void mpops_log_set(mpops_log_fn fn, void *arg);

/**
 * Set the most verbose level that reaches the callback (default
 * MPOPS_LOG_INFO, or the value of the environment variable
 * MPOPS_LOG_LEVEL: 0..3).
 */
MPOPS_API void mpops_log_set_level(enum mpops_log_level level);

/** Log one line through the current callback (for drivers built on mpops). */
MPOPS_API void mpops_log(enum mpops_log_level level, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#ifdef __cplusplus
}
#endif
#endif /* MPOPS_COMMON_H */
