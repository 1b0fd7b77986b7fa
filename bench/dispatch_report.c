/* SPDX-License-Identifier: BSD-3-Clause */
/* The dispatch benchmark's results: medians over runs, the table, the JSON. */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <unistd.h>

#include "dispatch.h"

/* ==== statistics over runs ============================================== */

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Percentile @p (0..100) of the n finite values in v (sorted in place). */
static double pct(double *v, unsigned n, double p)
{
	double k, f;
	unsigned i;

	if (n == 0)
		return NAN;
	qsort(v, n, sizeof(*v), cmp_double);
	k = (n - 1) * p / 100.0;
	i = (unsigned)k;
	f = k - i;
	return i + 1 < n ? v[i] * (1 - f) + v[i + 1] * f : v[i];
}

/* Collect f(run) for every run where it is finite. */
struct series {
	unsigned n;
	double *v;
};

static void series_add(struct series *s, double x)
{
	if (isfinite(x))
		s->v[s->n++] = x;
}

void dispatch_report_make(struct dispatch_report *rep, struct dispatch_sample *s,
			  unsigned runs, double tsc_ghz)
{
	double *buf = calloc(runs ? runs : 1, sizeof(*buf));
	struct series x = { 0, buf };

	for (unsigned r = 0; r < runs; r++)
		series_add(&x, s[r].timer_cycles);
	rep->timer_cycles = pct(x.v, x.n, 50);
	for (unsigned c = 0; c < DISPATCH_CASES; c++) {
		struct dispatch_case_result *res = &rep->c[c];
		unsigned ref = DISPATCH_IS_COLD(c) ? DISPATCH_COLD(DISPATCH_RAW_FNPTR_LOCAL)
						   : DISPATCH_RAW_FNPTR_LOCAL;

		/* Cold calls are timed with the TSC only: ns from its rate. */
		if (DISPATCH_IS_COLD(c))
			for (unsigned r = 0; r < runs; r++)
				s[r].ns[c] = s[r].cycles[c] / tsc_ghz;
		x.n = 0;
		for (unsigned r = 0; r < runs; r++)
			series_add(&x, s[r].cycles[c]);
		res->measured = x.n > 0;
		if (!res->measured)
			continue;
		res->cycles_median = pct(x.v, x.n, 50);
		res->spread_pct = res->cycles_median > 0
			? 100 * (pct(x.v, x.n, 90) - pct(x.v, x.n, 10)) / res->cycles_median : NAN;
		x.n = 0;
		for (unsigned r = 0; r < runs; r++)
			series_add(&x, s[r].ns[c]);
		res->ns_median = pct(x.v, x.n, 50);
		res->ns_p10 = pct(x.v, x.n, 10);
		res->ns_p90 = pct(x.v, x.n, 90);
		/* The ratio within each run, so a slow stretch of the host cancels. */
		x.n = 0;
		for (unsigned r = 0; r < runs; r++)
			if (s[r].cycles[ref] > 0)
				series_add(&x, s[r].cycles[c] / s[r].cycles[ref]);
		res->ratio = pct(x.v, x.n, 50);
		res->vs_primary = NAN;
	}
	free(buf);
}

void dispatch_report_compare(struct dispatch_report *sec, const struct dispatch_sample *ps,
			     const struct dispatch_sample *ss, unsigned runs)
{
	double *buf = calloc(runs ? runs : 1, sizeof(*buf));
	struct series x = { 0, buf };

	for (unsigned c = 0; c < DISPATCH_CASES; c++) {
		x.n = 0;
		for (unsigned r = 0; r < runs; r++)
			if (ss[r].cycles[c] > 0)
				series_add(&x, ps[r].cycles[c] / ss[r].cycles[c]);
		sec->c[c].vs_primary = pct(x.v, x.n, 50);
	}
	free(buf);
}

/* ==== the machine ======================================================= */

struct machine {
	long nproc;
	char cpu[128];
	char kernel[256];
	char compiler[64];
};

static void machine_get(struct machine *m)
{
	struct utsname u;
	char line[256];
	FILE *f;

	m->nproc = sysconf(_SC_NPROCESSORS_ONLN);
	strcpy(m->cpu, "unknown");
	if ((f = fopen("/proc/cpuinfo", "r"))) {
		while (fgets(line, sizeof(line), f)) {
			char *colon = strchr(line, ':');

			if (strncmp(line, "model name", 10) == 0 && colon) {
				snprintf(m->cpu, sizeof(m->cpu), "%s", colon + 2);
				m->cpu[strcspn(m->cpu, "\n")] = '\0';
				break;
			}
		}
		fclose(f);
	}
	if (uname(&u) == 0)
		snprintf(m->kernel, sizeof(m->kernel), "%s %s %s", u.sysname, u.release, u.machine);
	else
		strcpy(m->kernel, "unknown");
#ifdef __clang__
	snprintf(m->compiler, sizeof(m->compiler), "clang %d.%d.%d", __clang_major__,
		 __clang_minor__, __clang_patchlevel__);
#else
	snprintf(m->compiler, sizeof(m->compiler), "gcc %s", __VERSION__);
#endif
}

double dispatch_loadavg(void)
{
	double l = NAN;
	FILE *f = fopen("/proc/loadavg", "r");

	if (f) {
		if (fscanf(f, "%lf", &l) != 1)
			l = NAN;
		fclose(f);
	}
	return l;
}

/* ==== the table ========================================================= */

static void cell(FILE *f, const struct dispatch_case_result *r, int vs, int last)
{
	if (!r->measured) {
		fprintf(f, "  %-*s", last ? 0 : 33, r->error ? r->error : "not measured");
		return;
	}
	fprintf(f, "  %8.2f %8.1f %6.1f%% %6.3f", r->ns_median, r->cycles_median,
		r->spread_pct, r->ratio);
	if (vs)
		fprintf(f, " %7.3f", r->vs_primary);
}

void dispatch_table_print(FILE *f, const struct dispatch_meta *m,
			  const struct dispatch_report *rep, unsigned nrep)
{
	struct machine mc;

	machine_get(&mc);
	fprintf(f, "mpops dispatch benchmark: %u runs, %llu warm calls and %u cold calls per case "
		"per run\n", m->runs, (unsigned long long)m->calls, m->cold_calls);
	fprintf(f, "machine: %ld CPUs, %s, %s, built with %s; pinned to CPU %d; "
		"TSC %.1f MHz\n", mc.nproc, mc.cpu, mc.kernel, mc.compiler, m->cpu,
		m->tsc_ghz * 1000);
	fprintf(f, "load average %.2f before, %.2f after; dispatch/user has ops ID %u, the "
		"name table holds %u IDs\n", m->load[0], m->load[1], m->id, m->id_count);
	if (m->cold_calls) {
		fprintf(f, "cold: %s:", DISPATCH_COLD_METHOD);
		for (unsigned i = 0; i < nrep; i++)
			fprintf(f, "%s %s %.0f cycles", i ? "," : "", rep[i].role,
				rep[i].timer_cycles);
		fprintf(f, "\n");
	}
	fprintf(f, "cycles are TSC ticks; ns/call and cycles: median over runs; spread: "
		"p10-p90 of the runs as %% of the median;\nratio: to raw_fnptr_local (_cold "
		"cases: to raw_fnptr_local_cold) in the same run; vs prim: primary/secondary "
		"time, run by run\n\n");
	fprintf(f, "%-22s", "");
	for (unsigned i = 0; i < nrep; i++)
		fprintf(f, "  %-*s", i + 1 < nrep ? 33 : 0, rep[i].role);
	fprintf(f, "\n%-22s", "case");
	for (unsigned i = 0; i < nrep; i++)
		fprintf(f, "  %8s %8s %7s %6s%s", "ns/call", "cycles", "spread", "ratio",
			i ? " vs prim" : "");
	fprintf(f, "\n");
	for (unsigned c = 0; c < DISPATCH_CASES; c++) {
		int any = 0;

		for (unsigned i = 0; i < nrep; i++)
			any |= rep[i].c[c].measured || rep[i].c[c].error;
		if (!any)
			continue;
		fprintf(f, "%-22s", dispatch_case_name(c));
		for (unsigned i = 0; i < nrep; i++)
			cell(f, &rep[i].c[c], strcmp(rep[i].role, "secondary") == 0, i + 1 == nrep);
		fprintf(f, "\n");
	}
	for (unsigned i = 0; i < nrep; i++)
		if (rep[i].error)
			fprintf(f, "error: %s\n", rep[i].error);
}

/* ==== JSON ============================================================== */

static void json_str(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fprintf(f, "\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void json_num(FILE *f, const char *key, double v)
{
	if (isfinite(v))
		fprintf(f, ", \"%s\": %.4g", key, v);
	else
		fprintf(f, ", \"%s\": null", key);
}

int dispatch_json_write(const char *path, const struct dispatch_meta *m,
			const struct dispatch_report *rep, unsigned nrep)
{
	struct machine mc;
	FILE *f = fopen(path, "w");
	int rc = 0;

	if (!f) {
		rc = -errno;
		fprintf(stderr, "mpops-bench-dispatch: cannot write %s: %s\n", path, strerror(errno));
		return rc;
	}
	machine_get(&mc);
	fprintf(f, "{\n  \"benchmark\": \"dispatch\",\n  \"machine\": {\"nproc\": %ld, \"cpu\": ",
		mc.nproc);
	json_str(f, mc.cpu);
	fprintf(f, ", \"kernel\": ");
	json_str(f, mc.kernel);
	fprintf(f, ", \"compiler\": ");
	json_str(f, mc.compiler);
	json_num(f, "loadavg_before", m->load[0]);
	json_num(f, "loadavg_after", m->load[1]);
	fprintf(f, "},\n  \"config\": {\"runs\": %u, \"calls\": %llu, \"cold_calls\": %u, "
		"\"cpu\": %d, \"tsc_ghz\": %.4f, \"ops_id\": %u, \"name_table_ids\": %u, "
		"\"cold_method\": ", m->runs, (unsigned long long)m->calls, m->cold_calls, m->cpu,
		m->tsc_ghz, m->id, m->id_count);
	json_str(f, DISPATCH_COLD_METHOD);
	fprintf(f, "},\n  \"reports\": [\n");
	for (unsigned i = 0; i < nrep; i++) {
		fprintf(f, "    {\"role\": \"%s\"", rep[i].role);
		json_num(f, "timer_cycles", rep[i].timer_cycles);
		if (rep[i].error) {
			fprintf(f, ", \"error\": ");
			json_str(f, rep[i].error);
		}
		fprintf(f, ", \"cases\": [\n");
		for (unsigned c = 0, first = 1; c < DISPATCH_CASES; c++) {
			const struct dispatch_case_result *r = &rep[i].c[c];

			if (!r->measured && !r->error)
				continue;
			fprintf(f, "%s      {\"name\": \"%s\"", first ? "" : ",\n", dispatch_case_name(c));
			first = 0;
			if (!r->measured) {
				fprintf(f, ", \"error\": ");
				json_str(f, r->error);
				fputc('}', f);
				continue;
			}
			json_num(f, "ns_median", r->ns_median);
			json_num(f, "cycles_median", r->cycles_median);
			json_num(f, "spread_pct", r->spread_pct);
			json_num(f, "ratio", r->ratio);
			json_num(f, "ns_p10", r->ns_p10);
			json_num(f, "ns_p90", r->ns_p90);
			if (strcmp(rep[i].role, "secondary") == 0)
				json_num(f, "vs_primary", r->vs_primary);
			fputc('}', f);
		}
		fprintf(f, "\n    ]}%s\n", i + 1 < nrep ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	if (fclose(f) != 0) {
		rc = -errno;
		fprintf(stderr, "mpops-bench-dispatch: cannot write %s: %s\n", path, strerror(errno));
	}
	return rc;
}
