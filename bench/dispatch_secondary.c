/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-dispatch-secondary: the dispatch benchmark's secondary, its
 * own executable with its own copy of the ops class and implementations
 * registered in another order (dispatch_impls_secondary.c). Started by
 * mpops-bench-dispatch, which drives it run by run over stdin/stdout (the
 * protocol is described in dispatch_primary.c); not meant to be run by hand.
 *
 *   mpops-bench-dispatch-secondary --runtime-dir DIR --calls N --cold-calls N
 *       --warmup N --cases MASK [--no-cold] REGION
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dispatch.h"

#define PROG "mpops-bench-dispatch-secondary"

static void log_err(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	fprintf(stderr, PROG ": %s\n", line);
}

static void send_sample(unsigned run, const struct dispatch_sample *s, int rc)
{
	if (rc < 0) {
		printf("fail %u\n", run);
		return;
	}
	for (unsigned c = 0; c < DISPATCH_CASES; c++)
		printf("s %u %.17g %.17g\n", c, s->cycles[c], s->ns[c]);
	printf("t %.17g\ndone %u\n", s->timer_cycles, run);
}

int main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "runtime-dir", required_argument, NULL, 'd' },
		{ "calls", required_argument, NULL, 'c' },
		{ "cold-calls", required_argument, NULL, 'C' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "cases", required_argument, NULL, 'k' },
		{ "no-cold", no_argument, NULL, 'n' },
		{ NULL, 0, NULL, 0 },
	};
	struct dispatch_cfg cfg = { .calls = 1000000, .cold_calls = 1000, .warmup_calls = 1000000,
				    .cases = (1u << DISPATCH_BASE_CASES) - 1, .cold = 1 };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .timeout_ms = 60000 };
	const struct dispatch_dev_shared *sh;
	struct mpops_region *r = NULL;
	char line[128];
	mpops_off_t off;
	int opt, rc;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mpops_log_set(log_err, NULL);
	while ((opt = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (opt) {
		case 'd': ao.runtime_dir = optarg; break;
		case 'c': cfg.calls = strtoull(optarg, NULL, 10); break;
		case 'C': cfg.cold_calls = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'w': cfg.warmup_calls = strtoull(optarg, NULL, 10); break;
		case 'k': cfg.cases = (unsigned)strtoul(optarg, NULL, 10); break;
		case 'n': cfg.cold = 0; break;
		default: return 2;
		}
	}
	if (optind + 1 != argc || !cfg.calls || !cfg.cold_calls) {
		fprintf(stderr, "usage: " PROG " [--runtime-dir DIR] [--calls N] [--cold-calls N] "
			"[--warmup N] [--cases MASK] [--no-cold] REGION\n");
		return 2;
	}
	if ((rc = mpops_region_attach(argv[optind], &ao, &r)) < 0)
		return 1;
	if ((rc = mpops_root_get(r, DISPATCH_ROOT, &off)) < 0) {
		mpops_region_detach(r);
		return 1;
	}
	sh = mpops_ptr(mpops_region_base(r), off);
	if ((rc = dispatch_setup(r, sh, &cfg)) < 0 || (rc = dispatch_warmup()) < 0) {
		mpops_region_detach(r);
		return 1;
	}
	{
		/* Show why raw_fnptr_shared is not called here. */
		dispatch_notify_fn own = dispatch_user_notify_queue;
		uint64_t own_raw;

		memcpy(&own_raw, &own, sizeof(own_raw));
		printf("ready %llx %llx\n", (unsigned long long)sh->raw_notify,
		       (unsigned long long)own_raw);
	}
	while (fgets(line, sizeof(line), stdin)) {
		struct dispatch_sample s;
		unsigned run;

		if (sscanf(line, "run %u", &run) == 1) {
			rc = dispatch_run(run, &s);
			send_sample(run, &s, rc);
			if (rc < 0)
				break;
		} else if (strncmp(line, "quit", 4) == 0) {
			break;
		}
	}
	mpops_region_detach(r);
	return rc < 0 ? 1 : 0;
}
