/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mpops-bench-pps: medians, ranges and paired ratios; the table on stdout
 * and the JSON file (one case per line, so that bench/pps-plot.sh can read
 * it with awk).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>

#include "pps.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

double pps_median(const double *v, unsigned n)
{
	double t[PPS_MAX_ROUNDS];

	if (n == 0)
		return NAN;
	memcpy(t, v, n * sizeof(*v));
	qsort(t, n, sizeof(*t), cmp_double);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

const char *pps_driver_name(enum pps_driver d)
{
	return d == DRV_MPOPS ? "mpops" : "dpdk_virtio_user";
}

const char *pps_backend_name(enum pps_backend b)
{
	return b == BE_MPOPS_VHOST ? "mpops-vhost" : "dpdk-vhost";
}

const char *pps_mode_name(enum pps_mode m)
{
	return m == MODE_TXONLY ? "txonly" : m == MODE_RXONLY ? "rxonly" : "loopback";
}

const char *pps_group_name(enum pps_group g)
{
	return g == G_COMPARE ? "compare" : g == G_KICKS ? "kicks" : "scaling";
}

/* ---- per-case figures ---- */

struct figures {
	unsigned n;
	double med, lo, hi, spread, kpp, share_min;
};

static void figures(const struct pps_case *c, struct figures *f)
{
	double v[PPS_MAX_ROUNDS], k[PPS_MAX_ROUNDS], sh[PPS_MAX_ROUNDS];
	unsigned nk = 0;

	memset(f, 0, sizeof(*f));
	f->n = c->ns;
	f->med = f->lo = f->hi = f->spread = f->kpp = f->share_min = NAN;
	if (c->ns == 0)
		return;
	f->lo = INFINITY;
	f->hi = 0;
	for (unsigned i = 0; i < c->ns; i++) {
		v[i] = c->s[i].mpps;
		sh[i] = c->s[i].share_min;
		f->lo = fmin(f->lo, v[i]);
		f->hi = fmax(f->hi, v[i]);
		if (c->s[i].kpp >= 0)
			k[nk++] = c->s[i].kpp;
	}
	f->med = pps_median(v, c->ns);
	f->spread = f->med > 0 ? (f->hi - f->lo) / f->med * 100 : NAN;
	f->kpp = nk ? pps_median(k, nk) : NAN;
	f->share_min = pps_median(sh, c->ns);
}

/* Median, min and max over rounds of a's rate / b's rate in the same round. */
static int paired(const struct pps_case *a, const struct pps_case *b, double *med, double *lo,
		  double *hi)
{
	double r[PPS_MAX_ROUNDS];
	unsigned n = 0;

	*med = *lo = *hi = NAN;
	if (!a || !b)
		return 0;
	for (unsigned i = 0; i < a->ns; i++)
		for (unsigned j = 0; j < b->ns; j++)
			if (a->s[i].round == b->s[j].round && b->s[j].mpps > 0)
				r[n++] = a->s[i].mpps / b->s[j].mpps;
	if (n == 0)
		return 0;
	*med = pps_median(r, n);
	*lo = *hi = r[0];
	for (unsigned i = 1; i < n; i++) {
		*lo = fmin(*lo, r[i]);
		*hi = fmax(*hi, r[i]);
	}
	return (int)n;
}

static const struct pps_case *at(const struct pps_case *cs, int i)
{
	return i >= 0 ? &cs[i] : NULL;
}

/* ---- table ---- */

static void cell(char *buf, size_t len, const struct pps_case *c)
{
	struct figures f;

	if (!c) {
		snprintf(buf, len, "%-20s", "-");
		return;
	}
	figures(c, &f);
	if (c->skip || f.n == 0)
		snprintf(buf, len, "%-20s", c->skip ? "n/a" : "failed");
	else
		snprintf(buf, len, "%6.2f [%5.2f-%5.2f] ", f.med, f.lo, f.hi);
}

static void ratio(char *buf, size_t len, const struct pps_case *a, const struct pps_case *b)
{
	double m, lo, hi;

	if (paired(a, b, &m, &lo, &hi))
		snprintf(buf, len, "%5.2f ", m);
	else
		snprintf(buf, len, "%5s ", "-");
}

void pps_print_table(const struct pps_case *cs, unsigned n)
{
	int any = 0;

	/* compare: one line per setting, found from its ours-as-primary case
	 * (or whichever case of the setting comes first). */
	for (unsigned i = 0; i < n; i++) {
		const struct pps_case *c = &cs[i], *op = NULL, *os = NULL, *dp = NULL;
		char a[32], b[32], d[32], r1[16], r2[16], r3[16];

		if (c->group != G_COMPARE || (i && cs[i - 1].group == G_COMPARE &&
		    cs[i - 1].backend == c->backend && cs[i - 1].mode == c->mode &&
		    cs[i - 1].size == c->size && cs[i - 1].mergeable == c->mergeable))
			continue;
		if (!any++) {
			printf("\nPacket rate, Mpps: median [min-max] over rounds. Ratios: median over rounds\n"
			       "of ours / DPDK's (P/D, S/D) and secondary / primary (S/P) in the same round.\n\n");
			printf("%-11s %-8s %4s %-3s | %-20s| %-20s| %-20s| %-5s %-5s %-5s\n", "backend",
			       "mode", "size", "mrg", "mpops primary", "mpops secondary",
			       "dpdk virtio_user", "P/D", "S/D", "S/P");
		}
		for (unsigned j = i; j < n && cs[j].group == G_COMPARE &&
		     cs[j].backend == c->backend && cs[j].mode == c->mode && cs[j].size == c->size &&
		     cs[j].mergeable == c->mergeable; j++) {
			if (cs[j].driver == DRV_MPOPS && !cs[j].secondary)
				op = &cs[j];
			else if (cs[j].driver == DRV_MPOPS)
				os = &cs[j];
			else if (!cs[j].secondary)
				dp = &cs[j];
		}
		cell(a, sizeof(a), op);
		cell(b, sizeof(b), os);
		cell(d, sizeof(d), dp);
		ratio(r1, sizeof(r1), op, dp);
		ratio(r2, sizeof(r2), os, dp);
		ratio(r3, sizeof(r3), os, op);
		printf("%-11s %-8s %4u %-3s | %s| %s| %s| %s%s%s\n", pps_backend_name(c->backend),
		       pps_mode_name(c->mode), c->size, c->mergeable ? "on" : "off", a, b, d, r1, r2,
		       r3);
	}

	any = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct pps_case *c = &cs[i];
		struct figures f;
		char a[32], k[16];

		if (c->group != G_KICKS)
			continue;
		if (!any++)
			printf("\nKicks per packet (64-byte, mergeable, primary, against mpops-vhost);\n"
			       "ours from the driver's counters, DPDK's from what mpops-vhost read.\n\n"
			       "%-8s %-16s %-9s %-11s | %-20s| %s\n", "mode", "driver", "event_idx",
			       "backend", "Mpps", "kicks/packet");
		figures(c, &f);
		cell(a, sizeof(a), c);
		if (isnan(f.kpp))
			snprintf(k, sizeof(k), "-");
		else
			snprintf(k, sizeof(k), "%.4f", f.kpp);
		printf("%-8s %-16s %-9s %-11s | %s| %s\n", pps_mode_name(c->mode),
		       pps_driver_name(c->driver),
		       c->event_idx < 0 ? "not neg." : c->event_idx ? "on" : "off",
		       c->kick_driven ? "kick-drvn" : "polling", a, k);
	}

	any = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct pps_case *c = &cs[i];
		struct figures f;
		char a[32];

		if (c->group != G_SCALING)
			continue;
		if (!any++)
			printf("\nSecondaries sharing the frontend CPU (one queue pair each, 64-byte,\n"
			       "mpops-vhost polling on the other CPU); total Mpps, and the slowest\n"
			       "secondary's rate / the mean (1.00 = fair).\n\n"
			       "%-8s %11s | %-20s| %s\n", "mode", "secondaries", "total Mpps",
			       "slowest/mean");
		figures(c, &f);
		cell(a, sizeof(a), c);
		printf("%-8s %11u | %s| %.2f\n", pps_mode_name(c->mode), c->secondaries, a,
		       f.share_min);
	}

	any = 0;
	for (unsigned i = 0; i < n; i++) {
		const struct pps_case *c = &cs[i];

		if (!c->skip && !c->error[0])
			continue;
		if (!any++)
			printf("\nNot run, or failed in some rounds:\n");
		printf("  %s %s %s %s %u mrg=%s %s: %s%s\n", pps_group_name(c->group),
		       pps_driver_name(c->driver), pps_backend_name(c->backend),
		       pps_mode_name(c->mode), c->size, c->mergeable ? "on" : "off",
		       c->secondary ? "secondary" : "primary", c->skip ? c->skip : c->error,
		       c->skip ? "" : c->ns ? " (some rounds)" : "");
	}
	fflush(stdout);
}

/* ---- JSON ---- */

static void jnum(FILE *f, const char *key, double v, const char *fmt)
{
	fprintf(f, ", \"%s\": ", key);
	if (isnan(v) || isinf(v))
		fprintf(f, "null");
	else
		fprintf(f, fmt, v);
}

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			fputc('\\', f);
		if ((unsigned char)*s < 0x20)
			fprintf(f, "\\u%04x", *s);
		else
			fputc(*s, f);
	}
	fputc('"', f);
}

static void machine(FILE *f)
{
	char line[256], model[128] = "unknown";
	struct utsname u;
	FILE *ci = fopen("/proc/cpuinfo", "r");

	while (ci && fgets(line, sizeof(line), ci)) {
		char *c = strchr(line, ':');

		if (!strncmp(line, "model name", 10) && c) {
			snprintf(model, sizeof(model), "%s", c + 2);
			model[strcspn(model, "\n")] = '\0';
			break;
		}
	}
	if (ci)
		fclose(ci);
	uname(&u);
	fprintf(f, "  \"machine\": {\"cpus\": %ld, \"model\": ", sysconf(_SC_NPROCESSORS_ONLN));
	jstr(f, model);
	fprintf(f, ", \"kernel\": ");
	jstr(f, u.release);
	fprintf(f, ", \"memory_mb\": %ld},\n",
		(long)(sysconf(_SC_PHYS_PAGES) / 1024 * (sysconf(_SC_PAGESIZE) / 1024)));
}

/* The sources measured: git's description of the tree this was built from. */
static void source(FILE *f)
{
	char line[128] = "unknown";
#ifdef PPS_SOURCE_DIR
	FILE *p = popen("git -C '" PPS_SOURCE_DIR "' describe --always --dirty 2>/dev/null", "r");

	if (p) {
		if (!fgets(line, sizeof(line), p))
			snprintf(line, sizeof(line), "unknown");
		pclose(p);
	}
	line[strcspn(line, "\n")] = '\0';
#endif
	fprintf(f, "  \"source\": ");
	jstr(f, line);
	fprintf(f, ",\n");
}

int pps_write_json(const char *path, const struct pps_case *cs, unsigned n,
		   const struct pps_env *env, unsigned rounds, double elapsed)
{
	FILE *f = fopen(path, "w");
	char date[64];
	time_t t = time(NULL);

	if (!f)
		return -1;
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%SZ", gmtime(&t));
	fprintf(f, "{\n  \"benchmark\": \"mpops-bench-pps\", \"date\": \"%s\",\n", date);
	machine(f);
	source(f);
	fprintf(f, "  \"settings\": {\"rounds\": %u, \"seconds\": %.1f, \"warmup\": %.2f, "
		"\"cpu_backend\": %d, \"cpu_frontend\": %d, \"mbufs\": %u, \"burst\": 32, "
		"\"ring_size\": 256, \"elapsed_s\": %.0f},\n",
		rounds, env->seconds, env->warmup, env->cpu_backend, env->cpu_frontend, env->mbufs,
		elapsed);
	{
		char la[64] = "";
		FILE *l = fopen("/proc/loadavg", "r");

		if (l) {
			if (!fgets(la, sizeof(la), l))
				la[0] = '\0';
			fclose(l);
		}
		la[strcspn(la, "\n")] = '\0';
		fprintf(f, "  \"loadavg_at_end\": ");
		jstr(f, la);
		fprintf(f, ",\n");
	}
	fprintf(f, "  \"cases\": [\n");
	for (unsigned i = 0; i < n; i++) {
		const struct pps_case *c = &cs[i];
		double m, lo, hi;
		struct figures g;

		figures(c, &g);
		fprintf(f, "    {\"group\": \"%s\", \"driver\": \"%s\", \"backend\": \"%s\", "
			"\"mode\": \"%s\", \"size\": %u, \"mergeable\": %s, \"role\": \"%s\", "
			"\"secondaries\": %u",
			pps_group_name(c->group), pps_driver_name(c->driver),
			pps_backend_name(c->backend), pps_mode_name(c->mode), c->size,
			c->mergeable ? "true" : "false", c->secondary ? "secondary" : "primary",
			c->secondaries);
		fprintf(f, ", \"event_idx\": %s, \"backend_kick_driven\": %s",
			c->event_idx < 0 ? "null" : c->event_idx ? "true" : "false",
			c->kick_driven ? "true" : "false");
		jnum(f, "mpps_median", g.med, "%.4f");
		jnum(f, "mpps_min", g.lo, "%.4f");
		jnum(f, "mpps_max", g.hi, "%.4f");
		jnum(f, "spread_pct", g.spread, "%.1f");
		jnum(f, "kicks_per_packet", g.kpp, "%.5f");
		fprintf(f, ", \"runs\": %u, \"samples\": [", c->ns);
		for (unsigned k = 0; k < c->ns; k++)
			fprintf(f, "%s%.4f", k ? ", " : "", c->s[k].mpps);
		fprintf(f, "], \"foreign_cpu\": [");
		for (unsigned k = 0; k < c->ns; k++)
			fprintf(f, "%s%.2f", k ? ", " : "", c->s[k].foreign);
		fprintf(f, "], \"redone_disturbed\": %u", c->disturbed);
		if (paired(c, at(cs, c->peer), &m, &lo, &hi)) {
			jnum(f, "ratio_vs_dpdk", m, "%.3f");
			jnum(f, "ratio_vs_dpdk_min", lo, "%.3f");
			jnum(f, "ratio_vs_dpdk_max", hi, "%.3f");
		}
		if (paired(c, at(cs, c->primary_peer), &m, &lo, &hi)) {
			jnum(f, "ratio_vs_primary", m, "%.3f");
			jnum(f, "ratio_vs_primary_min", lo, "%.3f");
			jnum(f, "ratio_vs_primary_max", hi, "%.3f");
		}
		if (c->group == G_SCALING)
			jnum(f, "slowest_share", g.share_min, "%.3f");
		if (c->skip || c->error[0]) {
			fprintf(f, ", \"%s\": ", c->ns ? "failures" : "error");
			jstr(f, c->skip ? c->skip : c->error);
		}
		fprintf(f, "}%s\n", i + 1 < n ? "," : "");
	}
	fprintf(f, "  ]\n}\n");
	return fclose(f) == 0 ? 0 : -1;
}
