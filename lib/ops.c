/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The ops registry: process-local registrations, the shared append-only
 * name table, and binding one to the other.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ops_priv.h"

#define CLASSES_MAX 64

/* All local state is guarded by ops_mu (registration and binding are rare;
 * the hot path reads only the per-class tables). */
static pthread_mutex_t ops_mu = PTHREAD_MUTEX_INITIALIZER;
static const struct mpops_ops_class *classes[CLASSES_MAX];
static uint64_t class_hashes[CLASSES_MAX];
static unsigned nclasses;
static struct {
	const struct mpops_ops_impl *impl;
	mpops_ops_id_t id;
} impls[MPOPS_OPS_MAX];
static unsigned nimpls;
static struct ops_table_shared *bound;
static unsigned bound_flags;

/*
 * Registration failures of constructors. They run before main() can
 * install a log callback, so instead of logging (to stderr) they keep the
 * first line here and count the others; the next bind logs it through the
 * callback and fails with its errno. Guarded by ops_mu.
 */
static int at_load;			/* a constructor is registering */
static struct {
	int rc;
	unsigned more;
	char line[384];
} load_err;

/* A registration failed: log, or keep it for the next bind at load time. */
__attribute__((format(printf, 2, 3)))
static int reg_fail(int rc, const char *fmt, ...)
{
	char line[sizeof(load_err.line)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (!at_load)
		log_err("%s", line);
	else if (load_err.rc)
		load_err.more++;
	else {
		load_err.rc = rc;
		memcpy(load_err.line, line, sizeof(line));
	}
	return rc;
}

uint64_t ops_layout_hash(uint64_t h)
{
	h = fnv1a_u64(h, sizeof(struct ops_entry_shared));
	h = fnv1a_u64(h, offsetof(struct ops_entry_shared, sig_hash));
	h = fnv1a_u64(h, sizeof(struct ops_table_shared));
	h = fnv1a_u64(h, offsetof(struct ops_table_shared, e));
	return fnv1a_u64(h, OPS_TABLE_VERSION);
}

static int ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_';
}

/* The member list without the whitespace that does not separate two words:
 * "char * /" "* buf *" "/, size_t" (a comment is a space once stringified)
 * and "char*, size_t" hash the same. */
static uint64_t hash_signature(uint64_t h, const char *sig)
{
	char prev = 0;

	for (const char *c = sig; *c; c++) {
		if (*c == ' ' || *c == '\t' || *c == '\n') {
			const char *next = c;

			while (*next == ' ' || *next == '\t' || *next == '\n')
				next++;
			if (ident_char(prev) && ident_char(*next))
				h = fnv1a(h, " ", 1);
			c = next - 1;
			continue;
		}
		h = fnv1a(h, c, 1);
		prev = *c;
	}
	return fnv1a(h, "", 1);
}

uint64_t ops_class_hash(const struct mpops_ops_class *cls)
{
	uint64_t h = FNV_SEED;

	h = fnv1a(h, cls->name, strlen(cls->name) + 1);
	h = hash_signature(h, cls->signature);
	h = fnv1a(h, cls->types, cls->ntypes * sizeof(*cls->types));
	return fnv1a_u64(h, cls->ops_size);
}

/* ==== local registration ================================================ */

/* Slot @id of @cls's table gets a copy of @ops (the dummy or an
 * implementation's table): see "What the hot path does" in ops.h. */
static void slot_set(const struct mpops_ops_class *cls, unsigned id, const void *ops)
{
	memcpy((char *)cls->table + (size_t)id * cls->ops_size, ops, cls->ops_size);
}

static int class_index(const struct mpops_ops_class *cls)
{
	for (unsigned i = 0; i < nclasses; i++)
		if (classes[i] == cls)
			return (int)i;
	return -1;
}

static int class_register_locked(const struct mpops_ops_class *cls)
{
	uint64_t h;

	if (class_index(cls) >= 0)
		return 0;
	if (!cls->name || strlen(cls->name) > MPOPS_OPS_NAME_MAX || !cls->table || !cls->dummy ||
	    !cls->ops_size || !cls->signature || !cls->types || !cls->ntypes) {
		return reg_fail(-EINVAL, "ops class '%s': invalid descriptor (name of 1..%d characters, signature, types, table, dummy and ops size needed): define classes with MPOPS_OPS_CLASS_DEFINE",
				cls->name ? cls->name : "(null)", MPOPS_OPS_NAME_MAX);
	}
	h = ops_class_hash(cls);
	for (unsigned i = 0; i < nclasses; i++) {
		if (strcmp(classes[i]->name, cls->name) == 0 && class_hashes[i] != h) {
			return reg_fail(-EEXIST, "ops class '%s' is defined twice in this process with different members (signatures %#llx and %#llx): one definition per class",
					cls->name, (unsigned long long)class_hashes[i],
					(unsigned long long)h);
		}
	}
	if (nclasses == CLASSES_MAX) {
		return reg_fail(-ENOSPC, "ops class '%s': this process already has %d classes, the most it can register",
				cls->name, CLASSES_MAX);
	}
	for (unsigned i = 0; i < MPOPS_OPS_MAX; i++)
		slot_set(cls, i, cls->dummy);
	class_hashes[nclasses] = h;
	classes[nclasses++] = cls;
	return 0;
}

int mpops_ops_class_register(const struct mpops_ops_class *cls)
{
	int rc;

	if (!cls)
		return -EINVAL;
	pthread_mutex_lock(&ops_mu);
	rc = class_register_locked(cls);
	pthread_mutex_unlock(&ops_mu);
	return rc;
}

static int bind_one_locked(unsigned i);

static int register_locked(const struct mpops_ops_impl *impl)
{
	int rc;

	if (!impl || !impl->cls || !impl->ops || !impl->name ||
	    !*impl->name || strlen(impl->name) > MPOPS_OPS_NAME_MAX)
		return reg_fail(-EINVAL, "mpops_ops_register: invalid implementation (class, ops and a name of 1..%d characters needed)",
				MPOPS_OPS_NAME_MAX);
	if ((rc = class_register_locked(impl->cls)) < 0)
		return rc;
	for (unsigned i = 0; i < nimpls; i++) {
		const struct mpops_ops_impl *o = impls[i].impl;

		if (o == impl)
			return 0; /* registering twice is harmless */
		if (strcmp(o->cls->name, impl->cls->name) == 0 && strcmp(o->name, impl->name) == 0)
			return reg_fail(-EEXIST, "ops implementation %s/%s is registered twice in this process with different tables",
					impl->cls->name, impl->name);
	}
	if (nimpls == MPOPS_OPS_MAX)
		return reg_fail(-ENOSPC, "ops implementation %s/%s: this process already has %d implementations, the most it can register",
				impl->cls->name, impl->name, MPOPS_OPS_MAX);
	impls[nimpls].impl = impl;
	impls[nimpls].id = MPOPS_OPS_ID_NONE;
	nimpls++;
	if (bound && (rc = bind_one_locked(nimpls - 1)) < 0)
		nimpls--;
	return rc;
}

int mpops_ops_register(const struct mpops_ops_impl *impl)
{
	int rc;

	pthread_mutex_lock(&ops_mu);
	rc = register_locked(impl);
	pthread_mutex_unlock(&ops_mu);
	return rc;
}

/* The constructors' calls: a failure is kept for the next bind, unless the
 * process is bound already (a library loaded later, when a log callback
 * can be in place). */
void mpops__ops_class_register_at_load(const struct mpops_ops_class *cls)
{
	pthread_mutex_lock(&ops_mu);
	at_load = !bound;
	class_register_locked(cls);
	at_load = 0;
	pthread_mutex_unlock(&ops_mu);
}

void mpops__ops_register_at_load(const struct mpops_ops_impl *impl)
{
	pthread_mutex_lock(&ops_mu);
	at_load = !bound;
	register_locked(impl);
	at_load = 0;
	pthread_mutex_unlock(&ops_mu);
}

/* ==== the shared name table ============================================= */

size_t mpops_ops_table_size(void)
{
	return sizeof(struct ops_table_shared);
}

int mpops_ops_table_init(void *mem, size_t len)
{
	struct ops_table_shared *t = mem;

	if (!mem || len < sizeof(*t) || ((uintptr_t)mem & 63)) {
		log_err("mpops_ops_table_init: need %zu bytes, 64-byte aligned (got %zu at %p)",
			sizeof(*t), len, mem);
		return -EINVAL;
	}
	memset(t, 0, sizeof(*t));
	shlock_init(&t->lock);
	t->magic = OPS_TABLE_MAGIC;
	t->version = OPS_TABLE_VERSION;
	t->capacity = MPOPS_OPS_MAX;
	atomic_store(&t->count, 1); /* ID 0 stays "none" */
	return 0;
}

static int entry_find(const struct ops_table_shared *t, const char *cls,
		      const char *impl, uint32_t count)
{
	for (uint32_t i = 1; i < count; i++) {
		const struct ops_entry_shared *e = &t->e[i];

		if (atomic_load_explicit(&e->state, memory_order_acquire) == OPS_ENTRY_VALID &&
		    strcmp(e->cls, cls) == 0 && strcmp(e->impl, impl) == 0)
			return (int)i;
	}
	return -1;
}

/* Give implementation impls[i] its ID in the bound table. */
static int bind_one_locked(unsigned i)
{
	const struct mpops_ops_impl *impl = impls[i].impl;
	const struct mpops_ops_class *cls = impl->cls;
	struct ops_table_shared *t = bound;
	uint64_t h = class_hashes[class_index(cls)];
	int lookup_only = !!(bound_flags & MPOPS_OPS_BIND_F_LOOKUP_ONLY);
	uint32_t count;
	int id, rc = 0;

	if (!lookup_only)
		shlock_lock(&t->lock);
	count = atomic_load_explicit(&t->count, memory_order_acquire);
	if (count > t->capacity)
		count = t->capacity;
	/* Every entry of the class carries the class signature: one check
	 * covers a process that registered other implementations. */
	for (uint32_t k = 1; k < count; k++) {
		const struct ops_entry_shared *e = &t->e[k];

		if (strcmp(e->cls, cls->name) == 0 && e->sig_hash != h) {
			log_err("ops class '%s' differs between this process (signature %#llx) and the name table (%#llx, from %s/%s, pid %d), registering %s/%s: rebuild both programs from the same sources",
				cls->name, (unsigned long long)h,
				(unsigned long long)e->sig_hash, e->cls, e->impl,
				(int)e->first_pid, cls->name, impl->name);
			rc = -EPROTO;
			goto out;
		}
	}
	id = entry_find(t, cls->name, impl->name, count);
	if (id < 0 && lookup_only) {
		log_debug("%s/%s has no ID in the name table (read-only attach)",
			  cls->name, impl->name);
		goto out;
	}
	if (id < 0) {
		struct ops_entry_shared *e;

		if (count >= t->capacity) {
			log_err("ops name table is full (%u IDs): cannot register %s/%s",
				t->capacity, cls->name, impl->name);
			rc = -ENOSPC;
			goto out;
		}
		id = (int)count;
		e = &t->e[id];
		strlcpy(e->cls, cls->name, sizeof(e->cls));
		strlcpy(e->impl, impl->name, sizeof(e->impl));
		e->sig_hash = h;
		e->ops_size = (uint32_t)cls->ops_size;
		e->first_pid = getpid();
		atomic_store_explicit(&e->state, OPS_ENTRY_VALID, memory_order_release);
		atomic_store_explicit(&t->count, count + 1, memory_order_release);
	}
	impls[i].id = (mpops_ops_id_t)id;
	slot_set(cls, (unsigned)id, impl->ops);
out:
	if (!lookup_only)
		shlock_unlock(&t->lock);
	return rc;
}

static void unbind_locked(void)
{
	for (unsigned i = 0; i < nimpls; i++) {
		if (impls[i].id != MPOPS_OPS_ID_NONE)
			slot_set(impls[i].impl->cls, impls[i].id, impls[i].impl->cls->dummy);
		impls[i].id = MPOPS_OPS_ID_NONE;
	}
	bound = NULL;
	bound_flags = 0;
}

int mpops_ops_bind(void *mem, unsigned flags)
{
	struct ops_table_shared *t = mem;
	int rc = 0;

	if (!t)
		return -EINVAL;
	if (t->magic != OPS_TABLE_MAGIC || t->version != OPS_TABLE_VERSION) {
		log_err("mpops_ops_bind: no ops name table of version %u at %p (magic %#llx, version %u): initialise it with mpops_ops_table_init()",
			OPS_TABLE_VERSION, mem, (unsigned long long)t->magic, t->version);
		return -EPROTO;
	}
	pthread_mutex_lock(&ops_mu);
	if (load_err.rc) {
		log_err("mpops_ops_bind: a registration failed at load time, before a log callback could be installed: %s%s",
			load_err.line, load_err.more ? " (and more after it)" : "");
		rc = load_err.rc;
		goto out;
	}
	if (bound && bound != t) {
		log_err("mpops_ops_bind: this process is already bound to another ops name table: detach from it first");
		rc = -EBUSY;
		goto out;
	}
	bound = t;
	bound_flags = flags;
	for (unsigned i = 0; i < nimpls; i++) {
		if ((rc = bind_one_locked(i)) < 0) {
			unbind_locked();
			goto out;
		}
	}
out:
	pthread_mutex_unlock(&ops_mu);
	return rc;
}

int mpops_ops_unbind(void *mem)
{
	int rc = 0;

	pthread_mutex_lock(&ops_mu);
	if (!bound || bound != mem)
		rc = -ENOENT;
	else
		unbind_locked();
	pthread_mutex_unlock(&ops_mu);
	return rc;
}

/* ==== lookups =========================================================== */

int mpops_ops_id(const struct mpops_ops_impl *impl, mpops_ops_id_t *id)
{
	int rc = -ENOENT;

	if (!impl || !id)
		return -EINVAL;
	pthread_mutex_lock(&ops_mu);
	for (unsigned i = 0; i < nimpls; i++) {
		if (impls[i].impl == impl && impls[i].id != MPOPS_OPS_ID_NONE) {
			*id = impls[i].id;
			rc = 0;
		}
	}
	pthread_mutex_unlock(&ops_mu);
	if (rc)
		log_err("%s/%s has no ID: the process is not attached to a region (or bound to a name table) yet",
			impl->cls->name, impl->name);
	return rc;
}

int mpops_ops_find(const char *cls, const char *impl, mpops_ops_id_t *id)
{
	const struct ops_table_shared *t = bound;
	int i;

	if (!cls || !impl || !id)
		return -EINVAL;
	if (!t) {
		log_err("mpops_ops_find(%s/%s): the process is not attached to a region", cls, impl);
		return -ENOTCONN;
	}
	i = entry_find(t, cls, impl, atomic_load_explicit(&t->count, memory_order_acquire));
	if (i < 0)
		return -ENOENT;
	*id = (mpops_ops_id_t)i;
	return 0;
}

/* The table of the implementation of @cls that has ID @id here, or NULL. */
static const void *impl_of(const struct mpops_ops_class *cls, mpops_ops_id_t id)
{
	const void *ops = NULL;

	pthread_mutex_lock(&ops_mu);
	for (unsigned i = 0; i < nimpls && !ops; i++)
		if (impls[i].impl->cls == cls && impls[i].id == id)
			ops = impls[i].impl->ops;
	pthread_mutex_unlock(&ops_mu);
	return ops;
}

int mpops_ops_resolve(const struct mpops_ops_class *cls, mpops_ops_id_t id,
		      const void **ops)
{
	const struct ops_table_shared *t = bound;
	const struct ops_entry_shared *e;
	uint32_t count;

	if (!cls || !ops)
		return -EINVAL;
	*ops = cls->dummy;
	count = t ? atomic_load_explicit(&t->count, memory_order_acquire) : 0;
	if (id == MPOPS_OPS_ID_NONE || id >= count || id >= MPOPS_OPS_MAX) {
		log_err("ops ID %u of class '%s' is out of range (the name table has IDs 1..%u)%s",
			id, cls->name, count ? count - 1 : 0,
			t ? "" : ": the process is not attached to a region");
		return -ERANGE;
	}
	e = &t->e[id];
	if (strcmp(e->cls, cls->name) != 0) {
		log_err("ops ID %u is %s/%s, not an implementation of class '%s'",
			id, e->cls, e->impl, cls->name);
		return -EINVAL;
	}
	if (!(*ops = impl_of(cls, id))) {
		*ops = cls->dummy;
		log_err("%s/%s is not registered in this process: is the driver linked? (from a static archive, only what something references is linked: include a header with MPOPS_OPS_IMPL_REQUIRE(%s, %s), or link the archive whole: meson link_whole, ld --whole-archive)",
			e->cls, e->impl, e->cls, e->impl);
		return -ENOENT;
	}
	return 0;
}

int mpops_ops_name(mpops_ops_id_t id, char *cls, char *impl)
{
	const struct ops_table_shared *t = bound;

	if (!t)
		return -ENOTCONN;
	if (id == MPOPS_OPS_ID_NONE || id >= atomic_load(&t->count))
		return -ERANGE;
	if (cls)
		strlcpy(cls, t->e[id].cls, MPOPS_OPS_NAME_MAX + 1);
	if (impl)
		strlcpy(impl, t->e[id].impl, MPOPS_OPS_NAME_MAX + 1);
	return 0;
}

void mpops__dummy_called(const struct mpops_ops_class *cls, const char *op, int *once)
{
	if (__atomic_exchange_n(once, 1, __ATOMIC_RELAXED))
		return;
	log_err("%s.%s was called through an ops ID this process has not registered: returning -ENOTSUP (check IDs with mpops_ops_resolve() at attach; is the driver linked?)",
		cls->name, op);
}

/* ==== introspection ===================================================== */

const struct ops_table_shared *ops_bound_table(void)
{
	return bound;
}

unsigned ops_local_classes(const struct mpops_ops_class **out, uint64_t *hash,
			   unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&ops_mu);
	for (n = 0; n < nclasses && n < max; n++) {
		out[n] = classes[n];
		hash[n] = class_hashes[n];
	}
	pthread_mutex_unlock(&ops_mu);
	return n;
}

unsigned ops_local_impls(const struct mpops_ops_impl **out, mpops_ops_id_t *ids,
			 unsigned max)
{
	unsigned n;

	pthread_mutex_lock(&ops_mu);
	for (n = 0; n < nimpls && n < max; n++) {
		out[n] = impls[n].impl;
		ids[n] = impls[n].id;
	}
	pthread_mutex_unlock(&ops_mu);
	return n;
}
