/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * The shared region: memory, header, lock file, create/attach/detach, and
 * named roots.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libutil.h>
#include <numa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <unistd.h>

#include <mpops/ops.h>

#include "ops_priv.h"
#include "region_priv.h"

#define DEFAULT_SIZE (16u << 20)
#define HUGE_2M (2u << 20)
/* The host part: at least this much, and by default at least DEFAULT_HOST_MIN. */
#define HOST_MIN (1u << 20)
#define DEFAULT_HOST_MIN (2u << 20)
#define HUGETLBFS_MAGIC_NR 0x958458f6

/* ==== layout hash ======================================================= */


uint64_t region_layout_hash(void)
{
	uint64_t h = FNV_SEED;

	h = fnv1a_u64(h, MPOPS_ABI_VERSION);
	h = H_STRUCT(h, struct region_hdr_shared);
	h = H_FIELD(h, struct region_hdr_shared, layout_hash);
	h = H_FIELD(h, struct region_hdr_shared, state);
	h = H_FIELD(h, struct region_hdr_shared, ops_table_off);
	h = H_FIELD(h, struct region_hdr_shared, iova_table_off);
	h = H_FIELD(h, struct region_hdr_shared, roots);
	h = H_FIELD(h, struct region_hdr_shared, alloc);
	h = H_STRUCT(h, struct root_shared);
	h = H_STRUCT(h, struct alloc_shared);
	h = H_FIELD(h, struct alloc_shared, free_head);
	h = H_STRUCT(h, struct proc_entry_shared);
	h = H_FIELD(h, struct proc_entry_shared, exe);
	h = H_STRUCT(h, struct proc_table_shared);
	h = H_STRUCT(h, struct obj_entry_shared);
	h = H_FIELD(h, struct obj_entry_shared, shared);
	h = H_STRUCT(h, struct obj_table_shared);
	h = fnv1a_u64(h, MPOPS_OPS_MAX);
	h = fnv1a_u64(h, MPOPS_OBJ_MAX);
	h = fnv1a_u64(h, MPOPS_PROC_MAX);
	return ops_layout_hash(h);
}

/* ==== names and paths =================================================== */

static int name_check(const char *name)
{
	size_t n;

	if (!name || !*name) {
		log_err("region name is empty: give a name of 1 to %d characters",
			MPOPS_NAME_MAX);
		return -EINVAL;
	}
	n = strlen(name);
	if (n > MPOPS_NAME_MAX) {
		log_err("region name '%s' is longer than %d characters",
			name, MPOPS_NAME_MAX);
		return -EINVAL;
	}
	for (size_t i = 0; i < n; i++) {
		if (!isalnum((unsigned char)name[i]) && !strchr("_-.", name[i])) {
			log_err("region name '%s' has character '%c': use letters, digits, '_', '-' and '.'",
				name, name[i]);
			return -EINVAL;
		}
	}
	if (name[0] == '.') {
		log_err("region name '%s' starts with '.'", name);
		return -EINVAL;
	}
	return 0;
}

int mpops_runtime_dir(const char *override, char *buf, size_t len)
{
	const char *env;
	int n;

	if (override && *override)
		n = snprintf(buf, len, "%s", override);
	else if ((env = getenv("MPOPS_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s", env);
	else if ((env = getenv("XDG_RUNTIME_DIR")) && *env)
		n = snprintf(buf, len, "%s/mpops", env);
	else if (geteuid() == 0)
		n = snprintf(buf, len, "/run/mpops");
	else
		n = snprintf(buf, len, "/tmp/mpops-%u", (unsigned)geteuid());
	if (n < 0 || (size_t)n >= len)
		return -ENAMETOOLONG;
	return n;
}

/* One directory of mkdir_p: mode 0700, or 0750 and group @gid when a
 * group may attach (@gid >= 0). */
static int mkdir_one(const char *path, int64_t gid)
{
	if (mkdir(path, gid >= 0 ? 0750 : 0700) == 0) {
		if (gid >= 0 && chown(path, (uid_t)-1, (gid_t)gid) < 0)
			return -errno;
		return 0;
	}
	return errno == EEXIST ? 0 : -errno;
}

/* mkdir -p, for what it creates: see mkdir_one(). */
static int mkdir_p(const char *path, int64_t gid)
{
	char tmp[108];
	char *p;
	int rc;

	if (strlcpy(tmp, path, sizeof(tmp)) >= sizeof(tmp))
		return -ENAMETOOLONG;
	for (p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if ((rc = mkdir_one(tmp, gid)) < 0)
			return rc;
		*p = '/';
	}
	return mkdir_one(tmp, gid);
}

static int region_paths(struct mpops_region *r, const char *name,
			const char *rundir)
{
	int rc = mpops_runtime_dir(rundir, r->rundir, sizeof(r->rundir));

	/* sun_path holds 108 bytes: leave room for "/name.sock". */
	if (rc < 0 || (size_t)rc + strlen(name) + 7 > 107) {
		log_err("runtime directory for region '%s' is too long for a unix socket path: set a shorter MPOPS_RUNTIME_DIR",
			name);
		return -ENAMETOOLONG;
	}
	strlcpy(r->name, name, sizeof(r->name));
	snprintf(r->lock_path, sizeof(r->lock_path), "%s/%s.lock", r->rundir, name);
	snprintf(r->sock_path, sizeof(r->sock_path), "%s/%s.sock", r->rundir, name);
	return 0;
}

static struct mpops_region *region_new(void)
{
	struct mpops_region *r = calloc(1, sizeof(*r));

	if (!r)
		return NULL;
	r->fd = -1;
	r->dev_fd = -1;
	r->listen_fd = -1;
	r->conn_fd = -1;
	r->stop_fd[0] = r->stop_fd[1] = -1;
	r->watch_stop[0] = r->watch_stop[1] = -1;
	r->exit_fd = -1;
	pthread_mutex_init(&r->exit_mu, NULL);
	r->spare_fd = -1;
	pthread_mutex_init(&r->slots_mu, NULL);
	pthread_mutex_init(&r->chan_mu, NULL);
	pthread_mutex_init(&r->req_mu, NULL);
	pthread_mutex_init(&r->ports_mu, NULL);
	return r;
}

static void region_free(struct mpops_region *r)
{
	if (r->base)
		munmap(r->base, r->map_size);
	if (r->fd >= 0)
		close(r->fd);
	if (r->dev_fd >= 0)
		close(r->dev_fd);
	free(r->slots);
	free(r->clients);
	if (r->exit_fd >= 0)
		close(r->exit_fd);
	pthread_mutex_destroy(&r->exit_mu);
	pthread_mutex_destroy(&r->slots_mu);
	pthread_mutex_destroy(&r->chan_mu);
	pthread_mutex_destroy(&r->req_mu);
	pthread_mutex_destroy(&r->ports_mu);
	free(r);
}

/* ==== memory ============================================================ */

/* One memory object of @size bytes (already rounded): the fd, or -errno. */
static int memory_object(struct mpops_region *r, const struct mpops_region_opts *o,
			 const char *part, size_t size)
{
	char name[MPOPS_NAME_MAX + 8];
	const char *what = "memfd";
	int fd = -1;

	snprintf(name, sizeof(name), "%s.%s", r->name, part);
	switch (o->backing) {
	case MPOPS_BACKING_MEMFD:
		fd = memfd_create(name, MFD_CLOEXEC);
		break;
	case MPOPS_BACKING_MEMFD_HUGETLB:
		what = "hugetlb memfd";
		fd = memfd_create(name, MFD_CLOEXEC | MFD_HUGETLB);
		break;
	default: {
		const char *dir = o->hugetlbfs_dir ? o->hugetlbfs_dir : "/dev/hugepages";
		char path[256];

		what = "hugetlbfs file";
		snprintf(path, sizeof(path), "%s/mpops-%s-XXXXXX", dir, name);
		fd = mkostemp(path, O_CLOEXEC);
		if (fd >= 0)
			unlink(path); /* the fd is all anyone needs */
		break;
	}
	}
	if (fd < 0) {
		int e = errno;
		log_err("region '%s': cannot create the %s part's %s: %s", r->name, part, what,
			strerror(e));
		return -e;
	}
	if (ftruncate(fd, (off_t)size) < 0) {
		int e = errno;
		log_err("region '%s': cannot size the %s part's %s to %zu bytes: %s",
			r->name, part, what, size, strerror(e));
		close(fd);
		return -e;
	}
	return fd;
}

/*
 * Map the host part (r->fd) and the device part (r->dev_fd) back to back:
 * reserve the whole range first, aligned to @page, then map each part over
 * its share. @prot for both.
 */
static int memory_map(struct mpops_region *r, size_t page, int prot)
{
	size_t total = r->dev_off + r->dev_size;
	char *res, *base;

	r->map_size = total + (page > 4096 ? page : 0);
	res = mmap(NULL, r->map_size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE,
		   -1, 0);
	if (res == MAP_FAILED)
		return -errno;
	base = (char *)ALIGN_UP((uintptr_t)res, page);
	/* Give back the slack, so that base..base+map_size is all ours. */
	if (base != res)
		munmap(res, (size_t)(base - res));
	if (r->map_size - (size_t)(base - res) > total)
		munmap(base + total, r->map_size - (size_t)(base - res) - total);
	r->map_size = total;
	r->base = base;
	if (mmap(base, r->dev_off, prot, MAP_SHARED | MAP_FIXED, r->fd, 0) == MAP_FAILED ||
	    mmap(base + r->dev_off, r->dev_size, prot, MAP_SHARED | MAP_FIXED, r->dev_fd, 0) ==
		    MAP_FAILED)
		return -errno;
	r->size = total;
	return 0;
}

static int memory_create(struct mpops_region *r, const struct mpops_region_opts *o,
			 size_t size)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), dev;
	int rc;

	switch (o->backing) {
	case MPOPS_BACKING_MEMFD:
		break;
	case MPOPS_BACKING_MEMFD_HUGETLB:
		page = HUGE_2M;
		break;
	case MPOPS_BACKING_HUGETLBFS: {
		const char *dir = o->hugetlbfs_dir ? o->hugetlbfs_dir : "/dev/hugepages";
		struct statfs sfs;

		if (statfs(dir, &sfs) < 0 || (unsigned long)sfs.f_type != HUGETLBFS_MAGIC_NR) {
			log_err("region '%s': %s is not a mounted hugetlbfs: mount one (mount -t hugetlbfs nodev %s) or use the memfd backing",
				r->name, dir, dir);
			return -ENODEV;
		}
		page = (size_t)sfs.f_bsize;
		break;
	}
	default:
		log_err("region '%s': unknown backing %d", r->name, (int)o->backing);
		return -EINVAL;
	}
	size = ALIGN_UP(size, page);
	if (o->dev_size) {
		dev = ALIGN_UP(o->dev_size, page);
	} else {
		dev = size / 4 * 3 / page * page;
		if (size - dev < DEFAULT_HOST_MIN)
			dev = (size > DEFAULT_HOST_MIN + size / 2 ? size - DEFAULT_HOST_MIN
								    : size / 2) / page * page;
	}
	if (dev == 0 || dev >= size || size - dev < HOST_MIN) {
		log_err("region '%s': %zu bytes with a device part of %zu leave %zu for the host part, which needs at least %u: create the region larger%s",
			r->name, size, dev, dev < size ? size - dev : 0, HOST_MIN,
			o->dev_size ? " or with a smaller dev_size" : "");
		return -EINVAL;
	}
	r->dev_off = size - dev;
	r->dev_size = dev;
	if ((rc = memory_object(r, o, "host", r->dev_off)) < 0)
		return rc;
	r->fd = rc;
	if ((rc = memory_object(r, o, "dev", r->dev_size)) < 0)
		return rc;
	r->dev_fd = rc;
	if ((rc = memory_map(r, page, PROT_READ | PROT_WRITE)) < 0) {
		if (o->backing != MPOPS_BACKING_MEMFD && rc == -ENOMEM)
			log_err("region '%s': not enough free hugepages for %zu bytes: reserve more in /sys/kernel/mm/hugepages/ or use the memfd backing",
				r->name, size);
		else
			log_err("region '%s': cannot map %zu bytes: %s", r->name, size, strerror(-rc));
		return rc;
	}
	return 0;
}

static int memory_place(struct mpops_region *r, const struct mpops_region_opts *o)
{
	if (!(o->flags & MPOPS_REGION_F_NUMA))
		return 0;
	if (numa_available() < 0) {
		log_info("region '%s': NUMA is not available here: memory left to the kernel's default placement",
			 r->name);
		return 0;
	}
	if (o->numa_node < 0 || o->numa_node > numa_max_node()) {
		log_err("region '%s': NUMA node %d does not exist (nodes 0..%d)",
			r->name, o->numa_node, numa_max_node());
		return -ENODEV;
	}
	/* Before any page is touched, so the first touch lands on the node. */
	numa_tonode_memory(r->base, r->size, o->numa_node);
	return 0;
}

/* ==== create ============================================================ */

static int header_init(struct mpops_region *r, const struct mpops_region_opts *o)
{
	struct region_hdr_shared *h = r->base;
	mpops_off_t heap = ALIGN_UP(sizeof(*h), 4096);
	mpops_off_t off;
	int rc;

	r->hdr = h;
	h->magic = REGION_MAGIC;
	h->abi_version = MPOPS_ABI_VERSION;
	h->hdr_size = (uint32_t)heap;
	h->layout_hash = region_layout_hash();
	h->size = r->size;
	h->dev_off = r->dev_off;
	h->dev_size = r->dev_size;
	h->primary_pid = getpid();
	h->primary_start_time = mpops_proc_start_time(getpid());
	strlcpy(h->name, r->name, sizeof(h->name));
	rc = mpops_build_id(h->primary_build_id, sizeof(h->primary_build_id));
	h->primary_build_id_len = rc > 0 ? (uint32_t)rc : 0;
	h->backing = (uint32_t)o->backing;
	if ((rc = shlock_init(&h->roots_lock)) < 0)
		return rc;
	alloc_init(&h->alloc, heap, r->dev_off - heap);
	if ((rc = devheap_init(r)) < 0)
		return rc;

	rc = mpops_alloc(r, mpops_ops_table_size(), 64, "mpops.ops", &off);
	if (rc < 0)
		return rc;
	h->ops_table_off = off;
	r->ops_table = mpops_ptr(r->base, off);
	if ((rc = mpops_ops_table_init(r->ops_table, mpops_ops_table_size())) < 0)
		return rc;
	if ((rc = proc_table_init(r)) < 0)
		return rc;
	return obj_table_init(r);
}

int mpops_region_create(const char *name, const struct mpops_region_opts *opts,
			struct mpops_region **out)
{
	struct mpops_region_opts o = { .sz = sizeof(o) };
	struct mpops_region *r;
	pid_t other = 0;
	int rc;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((rc = name_check(name)) < 0)
		return rc;
	if (opts) {
		if (opts->sz == 0 || opts->sz > sizeof(o)) {
			log_err("region '%s': mpops_region_opts.sz must be sizeof(struct mpops_region_opts)", name);
			return -EINVAL;
		}
		memcpy(&o, opts, opts->sz);
	}
	if (!(r = region_new()))
		return -ENOMEM;
	r->role = MPOPS_ROLE_PRIMARY;
	if ((rc = region_paths(r, name, o.runtime_dir)) < 0)
		goto fail;
	if (o.flags & MPOPS_REGION_F_GROUP) {
		r->group_ok = 1;
		r->gid = o.gid;
	}
	if ((rc = mkdir_p(r->rundir, r->group_ok ? (int64_t)r->gid : -1)) < 0) {
		log_err("cannot create runtime directory %s: %s: set MPOPS_RUNTIME_DIR to a directory you can write",
			r->rundir, strerror(-rc));
		goto fail;
	}

	/* One primary per name: the lock file holds an flock and its pid. */
	r->pidfh = pidfile_open(r->lock_path, 0600, &other);
	if (!r->pidfh) {
		rc = -errno;
		if (rc == -EEXIST) {
			log_err("region '%s' already has a primary (pid %d): stop it first or pick another name",
				name, (int)other);
			rc = -EBUSY;
		} else {
			log_err("cannot create lock file %s: %s: set MPOPS_RUNTIME_DIR to a directory you can write",
				r->lock_path, rc == -EACCES ? "permission denied" : strerror(-rc));
		}
		goto fail;
	}

	/* libbsd opens the lock file without close-on-exec: a child of the
	 * primary must not keep the lock alive after the primary died. */
	fcntl(pidfile_fileno(r->pidfh), F_SETFD, FD_CLOEXEC);

	if ((rc = memory_create(r, &o, o.size ? o.size : DEFAULT_SIZE)) < 0)
		goto fail;
	if ((rc = memory_place(r, &o)) < 0)
		goto fail;
	if ((rc = header_init(r, &o)) < 0)
		goto fail;
	if ((rc = region_iova_init(r, &o)) < 0)
		goto fail;
	r->procs = mpops_ptr(r->base, r->hdr->proc_table_off);
	r->objs = mpops_ptr(r->base, r->hdr->obj_table_off);
	r->primary_pid = getpid();
	if ((rc = obj_slots_init(r)) < 0)
		goto fail;
	if ((rc = proc_register(r, MPOPS_ROLE_PRIMARY)) < 0)
		goto fail;
	if ((rc = mpops_ops_bind(r->ops_table, 0)) < 0)
		goto fail;
	r->ops_bound = 1;
	if ((rc = chan_listen(r, o.socket_mode ? o.socket_mode : r->group_ok ? 0660 : 0600)) < 0)
		goto fail;
	pidfile_write(r->pidfh);
	atomic_store(&r->hdr->state, REGION_READY);
	log_debug("region '%s' created: %zu bytes at %p, socket %s",
		  name, r->size, r->base, r->sock_path);
	*out = r;
	return 0;
fail:
	if (r->ops_bound)
		mpops_ops_unbind(r->ops_table);
	chan_stop(r);
	if (r->pidfh)
		pidfile_remove(r->pidfh);
	region_free(r);
	return rc;
}

/* ==== attach ============================================================ */

static int header_check(struct mpops_region *r, const struct hello_reply *info)
{
	const struct region_hdr_shared *h = r->base;

	if (h->magic != REGION_MAGIC) {
		log_err("region '%s': memory received from the primary is not an mpops region (magic %#llx)",
			r->name, (unsigned long long)h->magic);
		return -EPROTO;
	}
	if (h->abi_version != MPOPS_ABI_VERSION || h->layout_hash != region_layout_hash()) {
		log_err("region '%s': the primary's region has ABI %u, layout %#llx; this process was built with ABI %u, layout %#llx: rebuild both from the same mpops version",
			r->name, h->abi_version, (unsigned long long)h->layout_hash,
			MPOPS_ABI_VERSION, (unsigned long long)region_layout_hash());
		return -EPROTO;
	}
	if (h->size != r->size || h->size != info->size || h->dev_off != r->dev_off ||
	    h->dev_size != r->dev_size) {
		log_err("region '%s': header says %llu bytes with the device part at %#llx, the mapping has %zu at %#zx: the region is corrupt",
			r->name, (unsigned long long)h->size, (unsigned long long)h->dev_off,
			r->size, r->dev_off);
		return -EPROTO;
	}
	if (atomic_load(&h->state) != REGION_READY) {
		log_err("region '%s' is not ready (state %u): its primary is starting or stopping; retry",
			r->name, atomic_load(&h->state));
		return -EAGAIN;
	}
	return 0;
}

int mpops_region_attach(const char *name, const struct mpops_attach_opts *opts,
			struct mpops_region **out)
{
	struct mpops_attach_opts o = { .sz = sizeof(o) };
	struct hello_reply info;
	struct mpops_region *r;
	struct stat st, dst;
	int rc, fds[2] = { -1, -1 };

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((rc = name_check(name)) < 0)
		return rc;
	if (opts) {
		if (opts->sz == 0 || opts->sz > sizeof(o)) {
			log_err("region '%s': mpops_attach_opts.sz must be sizeof(struct mpops_attach_opts)", name);
			return -EINVAL;
		}
		memcpy(&o, opts, opts->sz);
	}
	if (!(r = region_new()))
		return -ENOMEM;
	r->role = MPOPS_ROLE_SECONDARY;
	r->readonly = !!(o.flags & MPOPS_ATTACH_F_READONLY);
	if (o.flags & MPOPS_ATTACH_F_GROUP) {
		r->group_ok = 1;
		r->gid = o.gid;
	}
	if ((rc = region_paths(r, name, o.runtime_dir)) < 0)
		goto fail;
	if ((rc = chan_connect(r, o.timeout_ms > 0 ? o.timeout_ms : 5000, fds, &info)) < 0)
		goto fail;
	r->fd = fds[0];
	r->dev_fd = fds[1];
	if (fstat(r->fd, &st) < 0 || fstat(r->dev_fd, &dst) < 0 || st.st_size <= 0 ||
	    dst.st_size <= 0 || (uint64_t)st.st_size + (uint64_t)dst.st_size != info.size) {
		log_err("region '%s': the fds received from the primary are not the region (sizes %lld and %lld, expected %llu in all)",
			name, (long long)st.st_size, (long long)dst.st_size,
			(unsigned long long)info.size);
		rc = -EPROTO;
		goto fail;
	}
	r->dev_off = (size_t)st.st_size;
	r->dev_size = (size_t)dst.st_size;
	if ((rc = memory_map(r, (size_t)(st.st_blksize > 4096 ? st.st_blksize : 4096),
			     PROT_READ | (r->readonly ? 0 : PROT_WRITE))) < 0) {
		log_err("region '%s': cannot map %llu bytes: %s",
			name, (unsigned long long)info.size, strerror(-rc));
		goto fail;
	}
	if ((rc = header_check(r, &info)) < 0)
		goto fail;
	r->hdr = r->base;
	r->primary_pid = r->hdr->primary_pid;
	r->procs = mpops_ptr(r->base, r->hdr->proc_table_off);
	r->objs = mpops_ptr(r->base, r->hdr->obj_table_off);
	r->ops_table = mpops_ptr(r->base, r->hdr->ops_table_off);
	if ((rc = obj_slots_init(r)) < 0)
		goto fail;
	if (!r->readonly && (rc = proc_register(r, MPOPS_ROLE_SECONDARY)) < 0)
		goto fail;
	rc = mpops_ops_bind(r->ops_table, r->readonly ? MPOPS_OPS_BIND_F_LOOKUP_ONLY : 0);
	if (rc < 0) {
		if (!r->readonly)
			proc_unregister(r, getpid(), mpops_proc_start_time(getpid()));
		goto fail;
	}
	r->ops_bound = 1;
	if ((rc = chan_watch_start(r)) < 0) {
		if (!r->readonly)
			proc_unregister(r, getpid(), mpops_proc_start_time(getpid()));
		mpops_ops_unbind(r->ops_table);
		goto fail;
	}
	log_debug("region '%s' attached at %p (primary pid %d)", name, r->base,
		  (int)r->primary_pid);
	*out = r;
	return 0;
fail:
	chan_close(r);
	region_free(r);
	return rc;
}

/* ==== detach and accessors ============================================== */

int mpops_region_detach(struct mpops_region *r)
{
	if (!r)
		return -EINVAL;
	/* No callback may run on a region being freed (nor detach from one). */
	if (r->role == MPOPS_ROLE_SECONDARY && chan_watch_stop(r) < 0)
		return -EDEADLK;
	/* The primary stops serving first: handlers may use slots and ops. */
	if (r->role == MPOPS_ROLE_PRIMARY) {
		atomic_store(&r->hdr->state, REGION_DEAD);
		chan_stop(r);
	}
	obj_slots_release_all(r);
	if (r->ops_bound)
		mpops_ops_unbind(r->ops_table);
	if (r->role == MPOPS_ROLE_PRIMARY) {
		proc_unregister(r, getpid(), mpops_proc_start_time(getpid()));
		if (r->pidfh)
			pidfile_remove(r->pidfh);
	} else {
		if (!r->readonly)
			proc_unregister(r, getpid(), mpops_proc_start_time(getpid()));
		chan_close(r);
	}
	region_free(r);
	return 0;
}

void *mpops_region_base(const struct mpops_region *r) { return r->base; }
size_t mpops_region_size(const struct mpops_region *r) { return r->size; }
const char *mpops_region_name(const struct mpops_region *r) { return r->name; }
enum mpops_role mpops_region_role(const struct mpops_region *r) { return r->role; }
int mpops_region_primary_pid(const struct mpops_region *r) { return r->primary_pid; }
int mpops_region_fd(const struct mpops_region *r) { return r->fd; }

int mpops_region_dev(const struct mpops_region *r, struct mpops_region_dev *d)
{
	if (!r || !d)
		return -EINVAL;
	d->off = r->dev_off;
	d->size = r->dev_size;
	d->addr = (char *)r->base + r->dev_off;
	d->fd = r->dev_fd;
	return 0;
}
int mpops_region_is_writable(const struct mpops_region *r) { return !r->readonly; }

int mpops_region_primary_check(struct mpops_region *r)
{
	if (!r)
		return -EINVAL;
	if (r->role == MPOPS_ROLE_PRIMARY)
		return 0;
	if (!atomic_load(&r->primary_gone) &&
	    atomic_load(&r->hdr->state) == REGION_READY &&
	    mpops_proc_alive(r->hdr->primary_pid, r->hdr->primary_start_time))
		return 0;
	return region_primary_lost(r);
}

void region_primary_exited(struct mpops_region *r)
{
	struct region_exit_cb cbs[MPOPS_PRIMARY_EXIT_CB_MAX];
	unsigned n;

	region_primary_lost(r);
	if (r->exit_fd >= 0)
		eventfd_write(r->exit_fd, 1);
	if (r->ports_primary_gone)
		r->ports_primary_gone(r);
	pthread_mutex_lock(&r->exit_mu);
	n = r->nprimary_cbs;
	memcpy(cbs, r->primary_cbs, sizeof(cbs));
	pthread_mutex_unlock(&r->exit_mu);
	for (unsigned i = 0; i < n; i++)
		cbs[i].fn(r, cbs[i].arg);
}

int mpops_region_on_primary_exit(struct mpops_region *r, mpops_primary_exit_fn fn, void *arg)
{
	int gone;

	if (!r || !fn)
		return -EINVAL;
	if (r->role != MPOPS_ROLE_SECONDARY) {
		log_err("region '%s': mpops_region_on_primary_exit is for secondaries: the primary is this process",
			r->name);
		return -EPERM;
	}
	pthread_mutex_lock(&r->exit_mu);
	if (r->nprimary_cbs == MPOPS_PRIMARY_EXIT_CB_MAX) {
		pthread_mutex_unlock(&r->exit_mu);
		log_err("region '%s': %d primary-exit callbacks already: register one that calls yours",
			r->name, MPOPS_PRIMARY_EXIT_CB_MAX);
		return -ENOSPC;
	}
	/* Under the lock: the watcher either copies this callback or has set
	 * primary_gone before taking the lock, and then we run it here. */
	gone = atomic_load(&r->primary_gone);
	if (!gone) {
		r->primary_cbs[r->nprimary_cbs].fn = fn;
		r->primary_cbs[r->nprimary_cbs++].arg = arg;
	}
	pthread_mutex_unlock(&r->exit_mu);
	if (gone)
		fn(r, arg);
	return 0;
}

int mpops_region_primary_exit_fd(const struct mpops_region *r)
{
	if (!r)
		return -EINVAL;
	return r->role == MPOPS_ROLE_SECONDARY && r->exit_fd >= 0 ? r->exit_fd : -EPERM;
}

int region_primary_lost(struct mpops_region *r)
{
	if (!atomic_exchange(&r->primary_gone, 1))
		log_err("region '%s': its primary (pid %d) has exited: restart the primary, then attach again",
			r->name, (int)r->primary_pid);
	return -ENOTCONN;
}

int mpops_region_ptr(struct mpops_region *r, mpops_off_t off, size_t len, void **out)
{
	if (!r || !out)
		return -EINVAL;
	if (off < r->hdr->hdr_size || off > r->size || len > r->size - off) {
		log_err("region '%s': offset %#llx (+%zu bytes) is outside the region's objects (%#x..%#zx)",
			r->name, (unsigned long long)off, len, r->hdr->hdr_size, r->size);
		return -ERANGE;
	}
	*out = (char *)r->base + off;
	return 0;
}

/* ==== named roots ======================================================= */

static int root_find(struct region_hdr_shared *h, const char *name)
{
	for (int i = 0; i < MPOPS_ROOTS_MAX; i++)
		if (h->roots[i].off && strcmp(h->roots[i].name, name) == 0)
			return i;
	return -1;
}

int region_writable(struct mpops_region *r, const char *what)
{
	if (r->readonly) {
		log_err("region '%s': %s needs a writable attach (this one is read-only)",
			r->name, what);
		return -EROFS;
	}
	return 0;
}

int mpops_root_set(struct mpops_region *r, const char *name, mpops_off_t off)
{
	struct region_hdr_shared *h;
	int rc, i;

	if (!r || !name || !*name || strlen(name) > MPOPS_NAME_MAX || !off)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_root_set")) < 0)
		return rc;
	h = r->hdr;
	if ((rc = shlock_lock_repair(&h->roots_lock, "the region's named roots", NULL, NULL)) < 0)
		return rc;
	if (root_find(h, name) >= 0) {
		rc = -EEXIST;
		log_err("region '%s': root '%s' is already published", r->name, name);
		goto out;
	}
	rc = -ENOSPC;
	for (i = 0; i < MPOPS_ROOTS_MAX; i++) {
		if (h->roots[i].off == 0) {
			strlcpy(h->roots[i].name, name, sizeof(h->roots[i].name));
			test_point("roots.named");
			__atomic_store_n(&h->roots[i].off, off, __ATOMIC_RELEASE);
			rc = 0;
			break;
		}
	}
	if (rc)
		log_err("region '%s': all %d roots are taken", r->name, MPOPS_ROOTS_MAX);
out:
	shlock_unlock(&h->roots_lock);
	return rc;
}

int mpops_root_get(struct mpops_region *r, const char *name, mpops_off_t *off)
{
	int i;

	if (!r || !name || !off)
		return -EINVAL;
	/* Read-only attaches cannot take the lock; a root is written before
	 * its offset is published, so a racing reader sees old or new. */
	if (!r->readonly && (i = shlock_lock_repair(&r->hdr->roots_lock, "the region's named roots", NULL, NULL)) < 0)
		return i;
	i = root_find(r->hdr, name);
	if (i >= 0)
		*off = r->hdr->roots[i].off;
	if (!r->readonly)
		shlock_unlock(&r->hdr->roots_lock);
	return i >= 0 ? 0 : -ENOENT;
}

int mpops_root_del(struct mpops_region *r, const char *name)
{
	int rc, i;

	if (!r || !name)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_root_del")) < 0)
		return rc;
	if ((rc = shlock_lock_repair(&r->hdr->roots_lock, "the region's named roots", NULL, NULL)) < 0)
		return rc;
	i = root_find(r->hdr, name);
	if (i >= 0) {
		/* The offset first: a root is free once it is 0, so a process
		 * dying here leaves a free root, not half a name. */
		__atomic_store_n(&r->hdr->roots[i].off, 0, __ATOMIC_RELEASE);
		memset(&r->hdr->roots[i], 0, sizeof(r->hdr->roots[i]));
	}
	shlock_unlock(&r->hdr->roots_lock);
	return i >= 0 ? 0 : -ENOENT;
}
