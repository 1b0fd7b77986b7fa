/* SPDX-License-Identifier: BSD-3-Clause */
/* The process table, process identity (start time, executable, build-id). */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "pkt_priv.h"
#include "region_priv.h"

/* ==== identity ========================================================== */

/* Fields of /proc/PID/stat: state (3), num_threads (20), starttime (22). */
struct stat_fields {
	char state;
	long threads;
	unsigned long long start;
};

static int stat_read(int32_t pid, struct stat_fields *f)
{
	char path[64], buf[1024];
	ssize_t n;
	char *p;
	int fd, field;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -errno;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -EIO;
	buf[n] = '\0';
	/* The command name may hold spaces and ')': fields start after the last ')'. */
	if (!(p = strrchr(buf, ')')) || p[1] != ' ')
		return -EIO;
	p += 2;
	f->state = *p;
	for (field = 3; field < 22 && p; field++) {
		if (field == 20)
			f->threads = strtol(p, NULL, 10);
		p = strchr(p, ' ');
		if (p)
			p++;
	}
	f->start = p ? strtoull(p, NULL, 10) : 0;
	return 0;
}

uint64_t mpops_proc_start_time(int32_t pid)
{
	struct stat_fields f;

	return stat_read(pid, &f) == 0 ? f.start : 0;
}

int mpops_proc_alive(int32_t pid, uint64_t start_time)
{
	struct stat_fields f;

	if (pid <= 0)
		return 0;
	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 0;
	if (stat_read(pid, &f) < 0 || f.start == 0)
		return 0;
	if (start_time != 0 && f.start != start_time)
		return 0;
	/* A zombie never runs again, even before its parent reaps it (but a
	 * thread-group leader that exited before its other threads shows Z
	 * with threads still running). */
	if ((f.state == 'Z' || f.state == 'X') && f.threads <= 1)
		return 0;
	return 1;
}

int proc_read_exe(char *buf, size_t len)
{
	ssize_t n = readlink("/proc/self/exe", buf, len - 1);

	if (n < 0) {
		buf[0] = '\0';
		return -errno;
	}
	buf[n] = '\0';
	return 0;
}

struct build_id_ctx {
	uint8_t *buf;
	size_t cap;
	int len;
};

static int build_id_phdr(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct build_id_ctx *c = arg;

	(void)size;
	/* The first object is the executable itself. */
	for (int i = 0; i < info->dlpi_phnum; i++) {
		const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
		const char *p, *end;

		if (ph->p_type != PT_NOTE)
			continue;
		p = (const char *)(info->dlpi_addr + ph->p_vaddr);
		end = p + ph->p_memsz;
		while (p + sizeof(ElfW(Nhdr)) <= end) {
			const ElfW(Nhdr) *nh = (const ElfW(Nhdr) *)p;
			const char *name = p + sizeof(*nh);
			const char *desc = name + ALIGN_UP(nh->n_namesz, 4);

			if (desc + nh->n_descsz > end)
				break;
			if (nh->n_type == NT_GNU_BUILD_ID && nh->n_namesz == 4 &&
			    memcmp(name, "GNU", 4) == 0) {
				if (nh->n_descsz > c->cap) {
					c->len = -ENOSPC;
					return 1;
				}
				memcpy(c->buf, desc, nh->n_descsz);
				c->len = (int)nh->n_descsz;
				return 1;
			}
			p = desc + ALIGN_UP(nh->n_descsz, 4);
		}
	}
	return 1; /* only the executable */
}

int mpops_build_id(uint8_t *buf, size_t len)
{
	struct build_id_ctx c = { .buf = buf, .cap = len, .len = 0 };

	dl_iterate_phdr(build_id_phdr, &c);
	return c.len;
}

void mpops_build_id_hex(const uint8_t *id, size_t len, char *buf)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		buf[2 * i] = hex[id[i] >> 4];
		buf[2 * i + 1] = hex[id[i] & 15];
	}
	buf[2 * len] = '\0';
}

/* ==== the table ========================================================= */

int proc_table_init(struct mpops_region *r)
{
	struct proc_table_shared *t;
	mpops_off_t off;
	int rc;

	rc = mpops_alloc(r, sizeof(*t), 64, "mpops.procs", &off);
	if (rc < 0)
		return rc;
	t = mpops_ptr(r->base, off);
	shlock_init(&t->lock);
	t->capacity = MPOPS_PROC_MAX;
	r->hdr->proc_table_off = off;
	return 0;
}

/*
 * Every change to the table is safe at each store: an entry is taken by
 * its state (written last) and given back by its state (written first).
 * Only the live count can be off after a holder died: counted again.
 */
static int procs_repair(void *arg)
{
	struct proc_table_shared *t = arg;
	uint32_t live = 0;

	for (int i = 0; i < MPOPS_PROC_MAX; i++)
		live += t->e[i].state == PROC_LIVE;
	t->live = live;
	return 0;
}

static int procs_lock(struct mpops_region *r)
{
	return shlock_lock_repair(&r->procs->lock, "the region's process table", procs_repair,
				  r->procs);
}

static void entry_clear(struct proc_table_shared *t, struct proc_entry_shared *e)
{
	__atomic_store_n(&e->state, PROC_FREE, __ATOMIC_RELEASE);
	memset(e, 0, sizeof(*e));
	t->live--;
}

static void entry_fill(struct proc_entry_shared *e, enum mpops_role role)
{
	int n;

	e->pid = getpid();
	e->role = (uint32_t)role;
	e->start_time = mpops_proc_start_time(e->pid);
	proc_read_exe(e->exe, sizeof(e->exe));
	n = mpops_build_id(e->build_id, sizeof(e->build_id));
	e->build_id_len = n > 0 ? (uint32_t)n : 0;
	__atomic_store_n(&e->state, PROC_LIVE, __ATOMIC_RELEASE);
}

static void entry_info(const struct proc_entry_shared *e, struct mpops_proc_info *p)
{
	memset(p, 0, sizeof(*p));
	p->pid = e->pid;
	p->role = (enum mpops_role)e->role;
	p->start_time = e->start_time;
	strlcpy(p->exe, e->exe, sizeof(p->exe));
	p->build_id_len = e->build_id_len <= MPOPS_BUILD_ID_MAX ? e->build_id_len : 0;
	memcpy(p->build_id, e->build_id, p->build_id_len);
}

int proc_register(struct mpops_region *r, enum mpops_role role)
{
	struct proc_table_shared *t = r->procs;
	int free_i = -1, rc;

	if ((rc = procs_lock(r)) < 0)
		return rc;
	for (int i = 0; i < MPOPS_PROC_MAX; i++) {
		struct proc_entry_shared *e = &t->e[i];

		/* Take over entries of processes that died unnoticed. */
		if (e->state == PROC_LIVE && !mpops_proc_alive(e->pid, e->start_time)) {
			log_info("region '%s': reclaiming process-table entry of pid %d, which is gone",
				 r->name, (int)e->pid);
			entry_clear(t, e);
		}
		if (e->state == PROC_FREE && free_i < 0)
			free_i = i;
	}
	if (free_i < 0) {
		shlock_unlock(&t->lock);
		log_err("region '%s': process table is full (%d processes attached): detach some first",
			r->name, MPOPS_PROC_MAX);
		return -ENOSPC;
	}
	entry_fill(&t->e[free_i], role);
	test_point("proc.filled");
	t->live++;
	shlock_unlock(&t->lock);
	return 0;
}

/* Remove the entry of @pid; 1 if there was one (copied to *out). */
static int entry_remove(struct mpops_region *r, int32_t pid, uint64_t start_time,
			struct mpops_proc_info *out)
{
	struct proc_table_shared *t = r->procs;
	int found = 0;

	if (procs_lock(r) < 0)
		return 0;
	for (int i = 0; i < MPOPS_PROC_MAX; i++) {
		struct proc_entry_shared *e = &t->e[i];

		if (e->state == PROC_LIVE && e->pid == pid &&
		    (start_time == 0 || e->start_time == start_time)) {
			if (out)
				entry_info(e, out);
			entry_clear(t, e);
			found = 1;
			break;
		}
	}
	shlock_unlock(&t->lock);
	return found;
}

void proc_unregister(struct mpops_region *r, int32_t pid, uint64_t start_time)
{
	if (r->procs)
		entry_remove(r, pid, start_time, NULL);
}

static void run_exit_cbs(struct mpops_region *r, const struct mpops_proc_info *p, int died)
{
	struct { mpops_proc_exit_fn fn; void *arg; } cbs[PROC_EXIT_CB_MAX];

	/* Copied, then called unlocked: a callback may use the channel API. */
	pthread_mutex_lock(&r->chan_mu);
	memcpy(cbs, r->exit_cbs, sizeof(cbs));
	pthread_mutex_unlock(&r->chan_mu);
	for (int i = 0; i < PROC_EXIT_CB_MAX; i++)
		if (cbs[i].fn)
			cbs[i].fn(r, p, died, cbs[i].arg);
}

void proc_gone(struct mpops_region *r, int32_t pid, uint64_t start_time)
{
	struct mpops_proc_info p;
	int died = 0;

	/* A secondary that detached cleanly removed its own entry. */
	if (!entry_remove(r, pid, start_time, &p)) {
		memset(&p, 0, sizeof(p));
		p.pid = pid;
		p.role = MPOPS_ROLE_SECONDARY;
		p.start_time = start_time;
	} else {
		log_warn("region '%s': secondary pid %d (%s) died without detaching: entry reclaimed",
			 r->name, (int)pid, p.exe);
		died = 1;
	}
	/* What it held in packet pools comes back, once it is really gone: a
	 * dying process's socket closes in the middle of its exit, a moment
	 * before it stops being a running process (500 ms at most, on this
	 * thread); one that detached usually exits right after (50 ms; if it
	 * lives on, what it still holds comes back at a later sweep). */
	for (int i = 0; i < (died ? 500 : 50) && mpops_proc_alive(pid, start_time); i++)
		nanosleep(&(struct timespec){ 0, 1000000 }, NULL);
	pktpool_reclaim_gone(r);
	run_exit_cbs(r, &p, died);
}

int mpops_proc_list(struct mpops_region *r, struct mpops_proc_info *out, unsigned max)
{
	struct proc_table_shared *t;
	unsigned n = 0;
	int rc;

	if (!r || (!out && max))
		return -EINVAL;
	t = r->procs;
	if (!r->readonly && (rc = procs_lock(r)) < 0)
		return rc;
	for (int i = 0; i < MPOPS_PROC_MAX; i++) {
		if (t->e[i].state != PROC_LIVE)
			continue;
		if (n < max)
			entry_info(&t->e[i], &out[n]);
		n++;
	}
	if (!r->readonly)
		shlock_unlock(&t->lock);
	return (int)n;
}

int mpops_proc_reap(struct mpops_region *r)
{
	struct proc_table_shared *t;
	struct mpops_proc_info gone[MPOPS_PROC_MAX];
	int n = 0, rc;

	if (!r)
		return -EINVAL;
	if ((rc = region_writable(r, "mpops_proc_reap")) < 0)
		return rc;
	t = r->procs;
	if ((rc = procs_lock(r)) < 0)
		return rc;
	for (int i = 0; i < MPOPS_PROC_MAX; i++) {
		struct proc_entry_shared *e = &t->e[i];

		if (e->state == PROC_LIVE && !mpops_proc_alive(e->pid, e->start_time)) {
			entry_info(e, &gone[n++]);
			entry_clear(t, e);
		}
	}
	shlock_unlock(&t->lock);
	if (r->role == MPOPS_ROLE_PRIMARY)
		pktpool_reclaim_gone(r);
	for (int i = 0; i < n; i++) {
		log_warn("region '%s': pid %d (%s) is gone: entry reclaimed",
			 r->name, (int)gone[i].pid, gone[i].exe);
		if (r->role == MPOPS_ROLE_PRIMARY)
			run_exit_cbs(r, &gone[i], 1);
	}
	return n;
}

int mpops_proc_on_exit(struct mpops_region *r, mpops_proc_exit_fn fn, void *arg)
{
	int rc = -ENOSPC;

	if (!r || !fn)
		return -EINVAL;
	if (r->role != MPOPS_ROLE_PRIMARY) {
		log_err("mpops_proc_on_exit: only the primary of region '%s' hears of exits", r->name);
		return -EPERM;
	}
	pthread_mutex_lock(&r->chan_mu);
	for (int i = 0; i < PROC_EXIT_CB_MAX; i++) {
		if (!r->exit_cbs[i].fn) {
			r->exit_cbs[i].fn = fn;
			r->exit_cbs[i].arg = arg;
			rc = 0;
			break;
		}
	}
	pthread_mutex_unlock(&r->chan_mu);
	if (rc)
		log_err("mpops_proc_on_exit: all %d exit callbacks are taken", PROC_EXIT_CB_MAX);
	return rc;
}
