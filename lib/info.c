/* SPDX-License-Identifier: BSD-3-Clause */
/* Introspection: registrations, resolution and attached processes. */
#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <mpops/info.h>

#include "ops_priv.h"
#include "region_priv.h"

struct out {
	FILE *f;
	int json;
};

static void jstr(FILE *f, const char *s)
{
	fputc('"', f);
	for (; s && *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c < 0x20)
			fprintf(f, "\\u%04x", c);
		else
			fputc(c, f);
	}
	fputc('"', f);
}

/* Symbol and object file of @addr, as dladdr sees them. */
static void where(const void *addr, char *sym, size_t slen, const char **file)
{
	Dl_info di;

	snprintf(sym, slen, "?");
	*file = "?";
	if (!addr || !dladdr(addr, &di))
		return;
	if (di.dli_fname)
		*file = di.dli_fname;
	if (di.dli_sname) {
		uintptr_t d = (uintptr_t)addr - (uintptr_t)di.dli_saddr;

		if (d)
			snprintf(sym, slen, "%s+%#" PRIxPTR, di.dli_sname, d);
		else
			snprintf(sym, slen, "%s", di.dli_sname);
	}
}

/* Name of member @k in a signature "ret a(..);ret b(..);". */
static void member_name(const char *sig, unsigned k, char *buf, size_t len)
{
	const char *p = sig;

	snprintf(buf, len, "op%u", k);
	for (unsigned i = 0; i < k && p; i++) {
		p = strchr(p, ';');
		if (p)
			p++;
	}
	if (!p || !*p)
		return;
	const char *paren = strchr(p, '(');
	const char *end = paren, *start;

	if (!paren)
		return;
	while (end > p && end[-1] == ' ')
		end--;
	start = end;
	while (start > p && (start[-1] == '_' || (start[-1] >= '0' && start[-1] <= '9') ||
			     (start[-1] >= 'a' && start[-1] <= 'z') ||
			     (start[-1] >= 'A' && start[-1] <= 'Z')))
		start--;
	if (end > start)
		snprintf(buf, len, "%.*s", (int)(end - start), start);
}

static void print_self(struct out *o)
{
	char exe[256] = "", bid[2 * MPOPS_BUILD_ID_MAX + 1] = "";
	uint8_t raw[MPOPS_BUILD_ID_MAX];
	int n;

	proc_read_exe(exe, sizeof(exe));
	n = mpops_build_id(raw, sizeof(raw));
	mpops_build_id_hex(raw, n > 0 ? (size_t)n : 0, bid);
	if (o->json) {
		fprintf(o->f, "\"pid\": %d, \"exe\": ", (int)getpid());
		jstr(o->f, exe);
		fprintf(o->f, ", \"build_id\": ");
		jstr(o->f, bid);
	} else {
		fprintf(o->f, "process %d: %s (build-id %s)\n", (int)getpid(), exe,
			bid[0] ? bid : "none");
	}
}

static void print_region(struct out *o, struct mpops_region *r)
{
	const struct region_hdr_shared *h;
	char bid[2 * MPOPS_BUILD_ID_MAX + 1];

	if (!r) {
		if (o->json)
			fprintf(o->f, ", \"region\": null");
		return;
	}
	h = r->hdr;
	mpops_build_id_hex(h->primary_build_id,
			   h->primary_build_id_len <= MPOPS_BUILD_ID_MAX ? h->primary_build_id_len : 0,
			   bid);
	if (o->json) {
		fprintf(o->f, ", \"region\": {\"name\": ");
		jstr(o->f, r->name);
		fprintf(o->f, ", \"role\": \"%s\", \"size\": %zu, \"dev_off\": %zu, \"dev_size\": %zu, \"base\": \"%p\", \"abi_version\": %u, \"layout_hash\": \"%#" PRIx64 "\", \"primary_pid\": %d, \"primary_build_id\": \"%s\", \"backing\": %u}",
			r->role == MPOPS_ROLE_PRIMARY ? "primary" : "secondary",
			r->size, r->dev_off, r->dev_size, r->base, h->abi_version, h->layout_hash,
			(int)h->primary_pid, bid, h->backing);
	} else {
		fprintf(o->f, "region '%s': %zu bytes mapped at %p here (%s; device part %zu bytes from %#zx), ABI %u, layout %#" PRIx64 ", primary pid %d (build-id %s)\n",
			r->name, r->size, r->base,
			r->role == MPOPS_ROLE_PRIMARY ? "primary" : "secondary",
			r->dev_size, r->dev_off, h->abi_version, h->layout_hash,
			(int)h->primary_pid, bid[0] ? bid : "none");
	}
}

static void print_classes(struct out *o)
{
	const struct mpops_ops_class *cls[64];
	uint64_t hash[64];
	unsigned n = ops_local_classes(cls, hash, 64);

	fprintf(o->f, o->json ? ", \"classes\": [" : "ops classes registered here: %u\n", n);
	for (unsigned i = 0; i < n; i++) {
		if (o->json) {
			fprintf(o->f, "%s{\"name\": ", i ? ", " : "");
			jstr(o->f, cls[i]->name);
			fprintf(o->f, ", \"signature_hash\": \"%#" PRIx64 "\", \"ops_size\": %zu, \"signature\": ",
				hash[i], cls[i]->ops_size);
			jstr(o->f, cls[i]->signature);
			fputc('}', o->f);
		} else {
			fprintf(o->f, "  %-16s signature %#018" PRIx64 "  %s\n",
				cls[i]->name, hash[i], cls[i]->signature);
		}
	}
	if (o->json)
		fputc(']', o->f);
}

static void print_impls(struct out *o)
{
	const struct mpops_ops_impl *im[MPOPS_OPS_MAX];
	mpops_ops_id_t ids[MPOPS_OPS_MAX];
	unsigned n = ops_local_impls(im, ids, MPOPS_OPS_MAX);

	fprintf(o->f, o->json ? ", \"implementations\": [" : "ops implementations registered here: %u\n", n);
	for (unsigned i = 0; i < n; i++) {
		const struct mpops_ops_class *c = im[i]->cls;
		unsigned nops = (unsigned)(c->ops_size / sizeof(void (*)(void)));
		void (*const *fns)(void) = im[i]->ops;
		char sym[128];
		const char *file;

		where(im[i]->ops, sym, sizeof(sym), &file);
		if (o->json) {
			fprintf(o->f, "%s{\"id\": %u, \"class\": ", i ? ", " : "", ids[i]);
			jstr(o->f, c->name);
			fprintf(o->f, ", \"name\": ");
			jstr(o->f, im[i]->name);
			fprintf(o->f, ", \"signature_hash\": \"%#" PRIx64 "\", \"address\": \"%p\", \"symbol\": ",
				ops_class_hash(c), im[i]->ops);
			jstr(o->f, sym);
			fprintf(o->f, ", \"object\": ");
			jstr(o->f, file);
			fprintf(o->f, ", \"ops\": [");
		} else {
			fprintf(o->f, "  id %3u  %s/%s  table %p  %s (%s)\n", ids[i], c->name,
				im[i]->name, im[i]->ops, sym, file);
		}
		for (unsigned k = 0; k < nops; k++) {
			char mname[64];
			void *fa;

			/* Function pointers printed as data addresses, by copy. */
			memcpy(&fa, &fns[k], sizeof(fa));
			member_name(c->signature, k, mname, sizeof(mname));
			where(fa, sym, sizeof(sym), &file);
			if (o->json) {
				fprintf(o->f, "%s{\"name\": ", k ? ", " : "");
				jstr(o->f, mname);
				fprintf(o->f, ", \"address\": \"%p\", \"symbol\": ", fa);
				jstr(o->f, sym);
				fputc('}', o->f);
			} else {
				fprintf(o->f, "           .%-20s %p  %s\n", mname, fa, sym);
			}
		}
		if (o->json)
			fprintf(o->f, "]}");
	}
	if (o->json)
		fputc(']', o->f);
}

/* IDs of the bound table that this process has no implementation for. */
static void print_unregistered(struct out *o)
{
	const struct ops_table_shared *t = ops_bound_table();
	const struct mpops_ops_impl *im[MPOPS_OPS_MAX];
	mpops_ops_id_t ids[MPOPS_OPS_MAX];
	unsigned n = ops_local_impls(im, ids, MPOPS_OPS_MAX), shown = 0;
	uint32_t count = t ? atomic_load(&t->count) : 0;

	if (!o->json && t)
		fprintf(o->f, "name table: %u IDs in use of %u\n", count ? count - 1 : 0, t->capacity);
	if (o->json)
		fputs(", \"unregistered\": [", o->f);
	for (uint32_t id = 1; id < count && id < MPOPS_OPS_MAX; id++) {
		int mine = 0;

		for (unsigned i = 0; i < n; i++)
			mine |= ids[i] == id;
		if (mine)
			continue;
		if (o->json) {
			fprintf(o->f, "%s{\"id\": %u, \"class\": ", shown ? ", " : "", id);
			jstr(o->f, t->e[id].cls);
			fprintf(o->f, ", \"name\": ");
			jstr(o->f, t->e[id].impl);
			fprintf(o->f, ", \"signature_hash\": \"%#" PRIx64 "\", \"first_pid\": %d}",
				t->e[id].sig_hash, (int)t->e[id].first_pid);
		} else {
			fprintf(o->f, "  id %3u  %s/%s  not registered here (resolves to the dummy)\n",
				id, t->e[id].cls, t->e[id].impl);
		}
		shown++;
	}
	if (o->json)
		fputc(']', o->f);
}

/* How this process's class named @name compares with the table's @sig:
 * "same", "differs" (its hash in *local) or "absent". */
static const char *class_here(const char *name, uint64_t sig, uint64_t *local)
{
	const struct mpops_ops_class *cls[64];
	uint64_t hash[64];
	unsigned n = ops_local_classes(cls, hash, 64);

	for (unsigned i = 0; i < n; i++) {
		if (strcmp(cls[i]->name, name) == 0) {
			*local = hash[i];
			return hash[i] == sig ? "same" : "differs";
		}
	}
	return "absent";
}

/*
 * Every class of the bound name table, whoever registered it: the
 * signature hash its entries carry, its IDs and implementations, and how
 * this process's class of that name compares. A process refused with
 * -EPROTO logs its own hash; this shows the one it was compared with.
 */
static void print_table_classes(struct out *o)
{
	const struct ops_table_shared *t = ops_bound_table();
	uint32_t count = t ? atomic_load(&t->count) : 0;
	unsigned shown = 0;

	if (count > MPOPS_OPS_MAX)
		count = MPOPS_OPS_MAX;
	if (o->json)
		fputs(", \"table_classes\": [", o->f);
	else if (t)
		fputs("classes in the name table (registered by any process):\n", o->f);
	for (uint32_t id = 1; id < count; id++) {
		const struct ops_entry_shared *e = &t->e[id];
		uint64_t local = 0;
		const char *here;
		uint32_t first = 1;
		unsigned k = 0;

		while (strcmp(t->e[first].cls, e->cls) != 0)
			first++;
		if (first < id)
			continue;	/* printed with its first ID */
		here = class_here(e->cls, e->sig_hash, &local);
		if (o->json) {
			fprintf(o->f, "%s{\"name\": ", shown ? ", " : "");
			jstr(o->f, e->cls);
			fprintf(o->f, ", \"signature_hash\": \"%#" PRIx64 "\", \"ops_size\": %u, \"here\": \"%s\"",
				e->sig_hash, e->ops_size, here);
			if (strcmp(here, "differs") == 0)
				fprintf(o->f, ", \"local_signature_hash\": \"%#" PRIx64 "\"", local);
			fputs(", \"implementations\": [", o->f);
		} else {
			fprintf(o->f, "  %-16s signature %#018" PRIx64 "  ops %u bytes  ", e->cls,
				e->sig_hash, e->ops_size);
			if (strcmp(here, "differs") == 0)
				fprintf(o->f, "(here: signature %#" PRIx64 ", which differs)\n", local);
			else
				fprintf(o->f, "(here: %s)\n", strcmp(here, "same") == 0 ?
					"the same signature" : "not registered");
			fputs("    IDs:", o->f);
		}
		for (uint32_t j = id; j < count; j++) {
			if (strcmp(t->e[j].cls, e->cls) != 0)
				continue;
			if (o->json) {
				fprintf(o->f, "%s{\"id\": %u, \"name\": ", k ? ", " : "", j);
				jstr(o->f, t->e[j].impl);
				fprintf(o->f, ", \"first_pid\": %d}", (int)t->e[j].first_pid);
			} else {
				fprintf(o->f, "%s %u %s", k ? "," : "", j, t->e[j].impl);
			}
			k++;
		}
		fputs(o->json ? "]}" : "\n", o->f);
		shown++;
	}
	if (o->json)
		fputc(']', o->f);
}

static void print_procs(struct out *o, struct mpops_region *r)
{
	struct mpops_proc_info p[MPOPS_PROC_MAX];
	int n;

	if (!r)
		return;
	n = mpops_proc_list(r, p, MPOPS_PROC_MAX);
	if (n > MPOPS_PROC_MAX)
		n = MPOPS_PROC_MAX;
	fprintf(o->f, o->json ? ", \"processes\": [" : "attached processes: %d\n", n);
	for (int i = 0; i < n; i++) {
		char bid[2 * MPOPS_BUILD_ID_MAX + 1];
		const char *role = p[i].role == MPOPS_ROLE_PRIMARY ? "primary" : "secondary";

		mpops_build_id_hex(p[i].build_id, p[i].build_id_len, bid);
		if (o->json) {
			fprintf(o->f, "%s{\"pid\": %d, \"role\": \"%s\", \"start_time\": %" PRIu64 ", \"exe\": ",
				i ? ", " : "", (int)p[i].pid, role, p[i].start_time);
			jstr(o->f, p[i].exe);
			fprintf(o->f, ", \"build_id\": \"%s\"}", bid);
		} else {
			fprintf(o->f, "  pid %-7d %-9s %s (build-id %s)\n", (int)p[i].pid, role,
				p[i].exe, bid[0] ? bid : "none");
		}
	}
	if (o->json)
		fputc(']', o->f);
}

int mpops_info_print(struct mpops_region *r, FILE *f, unsigned flags)
{
	struct out o = { .f = f, .json = !!(flags & MPOPS_INFO_F_JSON) };

	if (!f)
		return -EINVAL;
	if (o.json)
		fputc('{', f);
	print_self(&o);
	print_region(&o, r);
	print_classes(&o);
	print_impls(&o);
	print_unregistered(&o);
	print_table_classes(&o);
	print_procs(&o, r);
	if (o.json)
		fputs("}\n", f);
	return fflush(f) == 0 && !ferror(f) ? 0 : -EIO;
}
