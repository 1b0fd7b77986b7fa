/* SPDX-License-Identifier: BSD-3-Clause */
/*
 * mp-secondary: a secondary built as its own executable, with its own copy
 * of the demo class and another subset of implementations (gamma, delta,
 * alpha: no beta). The tests start it with a command:
 *
 *   mp-secondary CMD RUNDIR REGION [ARG]
 *
 * Every log line goes to stdout as "log: ...", results as "key=value"
 * lines; the exit status is 0 when the command's own checks hold.
 */
#include <errno.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "as_user.h"
#include "demo_ops.h"
#include "pkt_priv.h"
#include "pkt_stress.h"

static void log_out(enum mpops_log_level level, const char *line, void *arg)
{
	(void)level;
	(void)arg;
	printf("log: %s\n", line);
	fflush(stdout);
}

static struct mpops_region *attach_as(const char *dir, const char *name, uint32_t flags,
				      uint32_t gid, int *rc)
{
	struct mpops_attach_opts o = {
		.sz = sizeof(o), .runtime_dir = dir, .flags = flags, .gid = gid,
	};
	struct mpops_region *r = NULL;

	*rc = mpops_region_attach(name, &o, &r);
	printf("attach=%d\n", *rc);
	fflush(stdout);
	return r;
}

static void *root(struct mpops_region *r, const char *name)
{
	mpops_off_t off;

	if (mpops_root_get(r, name, &off) < 0) {
		printf("no root '%s'\n", name);
		exit(3);
	}
	return mpops_ptr(mpops_region_base(r), off);
}

static struct mpops_region *attach(const char *dir, const char *name, uint32_t flags, int *rc)
{
	return attach_as(dir, name, flags, 0, rc);
}

/* Resolve and call every demo device the primary published. */
static int cmd_resolve(struct mpops_region *r)
{
	struct demo_devs_shared *devs = root(r, "devs");
	mpops_ops_id_t id;
	int bad = 0;

	for (uint32_t i = 0; i < devs->n; i++) {
		struct demo_dev_shared *d = &devs->dev[i];
		const struct demo_ops *ops;
		char cls[32] = "", impl[32] = "";
		int rrc = mpops_ops_resolve_demo(d->ops_id, &ops);
		int ret = MPOPS_OPS(demo, d->ops_id)->notify(d, 0);

		mpops_ops_name(d->ops_id, cls, impl);
		printf("dev%u id=%u name=%s/%s resolve=%d ret=%d own=%d\n", i, d->ops_id,
		       cls, impl, rrc, ret,
		       ops == &demo_alpha_ops || ops == &demo_gamma_ops);
		/* alpha and gamma must resolve to this program's tables. */
		if (strcmp(impl, "alpha") == 0)
			bad |= ops != &demo_alpha_ops || ret != 'A';
		else if (strcmp(impl, "gamma") == 0)
			bad |= ops != &demo_gamma_ops || ret != 'C';
		else if (strcmp(impl, "beta") == 0)
			bad |= rrc != -ENOENT || ret != -ENOTSUP;
	}
	if (mpops_ops_id(&mpops_impl_demo_delta, &id) == 0)
		printf("delta=%u\n", id);
	return bad;
}

/* The origin's bug: call through a pointer the primary stored. */
static int cmd_origin(struct mpops_region *r)
{
	struct origin_bug_dev *o = root(r, "origin");
	void *raw, *own = NULL;
	int st = 0, ret;
	pid_t pid;

	memcpy(&raw, &o->raw_notify, sizeof(raw));
	{
		int (*fn)(struct demo_dev_shared *, demo_queue_t) = demo_alpha_notify;
		memcpy(&own, &fn, sizeof(own));
	}
	printf("raw=%p own=%p same=%d\n", raw, own, raw == own);
	fflush(stdout);
	pid = fork();
	if (pid == 0) {
		/* Die of the signal itself, even under a sanitizer's handler. */
		signal(SIGSEGV, SIG_DFL);
		signal(SIGBUS, SIG_DFL);
		signal(SIGILL, SIG_DFL);
		/* What the origin's secondary did. */
		ret = o->raw_notify(&o->dev, 0);
		_exit(ret == 'A' ? 0 : 1);
	}
	waitpid(pid, &st, 0);
	if (WIFSIGNALED(st))
		printf("raw-call: signal %d\n", WTERMSIG(st));
	else
		printf("raw-call: exit %d\n", WEXITSTATUS(st));
	ret = MPOPS_OPS(demo, o->dev.ops_id)->notify(&o->dev, 0);
	printf("id-call: %d\n", ret);
	return raw == own || !WIFSIGNALED(st) || ret != 'A';
}

static int cmd_request(struct mpops_region *r, unsigned nfds)
{
	struct mpops_msg *req = calloc(1, sizeof(*req)), *rep = calloc(1, sizeof(*rep));
	int rc, bad = 0;

	req->type = DEMO_MSG_ECHO;
	req->len = (uint32_t)snprintf((char *)req->data, sizeof(req->data), "hello from %d", (int)getpid());
	rc = mpops_channel_request(r, req, rep, 0);
	printf("echo=%d '%.*s'\n", rc, (int)rep->len, (char *)rep->data);
	bad |= rc != 0 || rep->len < 6 || memcmp(rep->data + rep->len - 6, "-reply", 6) != 0;
	mpops_msg_clear(rep);

	/* N fds from the primary, in order, values 1..N. */
	req->type = DEMO_MSG_GET_FDS;
	req->len = sizeof(nfds);
	memcpy(req->data, &nfds, sizeof(nfds));
	rc = mpops_channel_request(r, req, rep, 0);
	printf("get_fds=%d n=%u\n", rc, rep->nfds);
	bad |= rc != 0 || rep->nfds != nfds;
	for (uint32_t i = 0; i < rep->nfds; i++) {
		eventfd_t v = 0;

		if (eventfd_read(rep->fds[i], &v) < 0 || v != i + 1) {
			printf("fd %u: value %llu\n", i, (unsigned long long)v);
			bad = 1;
		}
	}
	mpops_msg_clear(rep);

	/* N fds to the primary, values 1001.. */
	memset(req, 0, sizeof(*req));
	req->type = DEMO_MSG_PUT_FDS;
	for (uint32_t i = 0; i < nfds; i++)
		mpops_msg_add_fd(req, eventfd(1001 + i, EFD_CLOEXEC));
	rc = mpops_channel_request(r, req, rep, 0);
	printf("put_fds=%d\n", rc);
	bad |= rc != 0;
	for (uint32_t i = 0; i < req->nfds; i++)
		close(req->fds[i]);
	mpops_msg_clear(req);
	mpops_msg_clear(rep);

	req->type = 0x7777; /* no handler */
	rc = mpops_channel_request(r, req, rep, 0);
	printf("unknown=%d\n", rc);
	bad |= rc != -ENOTSUP;

	/* A request that outlives its timeout, then one that does not. */
	req->type = DEMO_MSG_SLOW;
	rc = mpops_channel_request(r, req, rep, 200);
	printf("slow=%d\n", rc);
	bad |= rc != -ETIMEDOUT;
	req->type = DEMO_MSG_ECHO;
	req->len = 2;
	memcpy(req->data, "ok", 2);
	rc = mpops_channel_request(r, req, rep, 5000);
	printf("after-timeout=%d '%.*s'\n", rc, (int)rep->len, (char *)rep->data);
	bad |= rc != 0 || rep->len != 8 || memcmp(rep->data, "ok-reply", 8) != 0;
	mpops_msg_clear(rep);
	free(req);
	free(rep);
	return bad;
}

/* A request with one fd more than the primary accepts, then one that fits. */
static int cmd_toomany(struct mpops_region *r)
{
	struct mpops_msg *req = calloc(1, sizeof(*req)), *rep = calloc(1, sizeof(*rep));
	int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK), rc, rc2;

	/* One fd many times: the request is refused before it is sent (were
	 * it sent, the handler's reads would fail at once, not block). */
	req->type = DEMO_MSG_PUT_FDS;
	for (int i = 0; i <= MPOPS_CHANNEL_REQ_FDS_MAX; i++)
		mpops_msg_add_fd(req, efd);
	rc = mpops_channel_request(r, req, rep, 0);
	mpops_msg_clear(req);
	req->type = DEMO_MSG_ECHO;
	req->len = 2;
	memcpy(req->data, "ok", 2);
	rc2 = mpops_channel_request(r, req, rep, 0);
	printf("toomany=%d then=%d\n", rc, rc2);
	close(efd);
	mpops_msg_clear(rep);
	free(req);
	free(rep);
	return rc != -E2BIG || rc2 != 0;
}

/* ---- per-process slot: a kick eventfd fetched over the channel ---------- */

struct kick_slot {
	int fd;
};

struct kick_shared {
	uint32_t attaches;	/* bumped by every attach hook, any process */
	uint32_t detaches;
	uint32_t go;		/* test -> peer: epoch bumped, kick again */
	uint32_t done;
	mpops_obj_id_t id;
};

static int kick_attach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void **slot)
{
	struct kick_shared *ks = shared;
	struct mpops_msg *req = calloc(1, sizeof(*req)), *rep = calloc(1, sizeof(*rep));
	struct kick_slot *s = calloc(1, sizeof(*s));
	int rc;

	(void)id;
	req->type = DEMO_MSG_KICKFD;
	rc = mpops_channel_request(r, req, rep, 0);
	if (rc == 0 && rep->nfds == 1) {
		s->fd = rep->fds[0];
		rep->fds[0] = -1;
		__atomic_add_fetch(&ks->attaches, 1, __ATOMIC_SEQ_CST);
		*slot = s;
	} else {
		free(s);
		rc = rc ? rc : -EBADMSG;
	}
	mpops_msg_clear(rep);
	free(req);
	free(rep);
	return rc;
}

static int kick_detach(struct mpops_region *r, mpops_obj_id_t id, void *shared, void *slot)
{
	struct kick_slot *s = slot;
	struct kick_shared *ks = shared;

	(void)r;
	(void)id;
	close(s->fd);
	free(s);
	__atomic_add_fetch(&ks->detaches, 1, __ATOMIC_SEQ_CST);
	return 0;
}

static const struct mpops_obj_ops kick_ops = { .attach = kick_attach, .detach = kick_detach };
MPOPS_OPS_IMPL(mpops_obj, test_kick, &kick_ops)

static int cmd_slot(struct mpops_region *r)
{
	struct kick_shared *ks = root(r, "kick");
	struct kick_slot *s;
	int rc;

	rc = mpops_obj_slot(r, ks->id, (void **)&s);
	printf("slot=%d\n", rc);
	if (rc < 0)
		return 1;
	eventfd_write(s->fd, 1);
	printf("kicked 1\n");
	fflush(stdout);
	while (!__atomic_load_n(&ks->go, __ATOMIC_SEQ_CST))
		usleep(1000);
	/* The owner bumped the epoch: the slot is rebuilt (new fd). */
	rc = mpops_obj_slot(r, ks->id, (void **)&s);
	printf("slot2=%d\n", rc);
	if (rc < 0)
		return 1;
	eventfd_write(s->fd, 1);
	printf("kicked 2\n");
	fflush(stdout);
	while (__atomic_load_n(&ks->go, __ATOMIC_SEQ_CST) != 2)
		usleep(1000);
	/* Destroyed meanwhile: the old ID is stale. */
	rc = mpops_obj_slot(r, ks->id, (void **)&s);
	printf("slot3=%d\n", rc);
	return rc != -ESTALE;
}

static int cmd_audit(struct mpops_region *r)
{
	struct mpops_audit_finding f[8];
	int n;

	cmd_resolve(r);
	n = mpops_audit(r, NULL, f, 8);
	printf("findings=%d\n", n);
	return n != 0;
}

/* Allocate and free from this process while others do the same. */
static int cmd_allocstress(struct mpops_region *r, int rounds)
{
	mpops_off_t offs[32];
	int bad = 0;

	for (int k = 0; k < rounds; k++) {
		for (int i = 0; i < 32; i++) {
			if (mpops_alloc(r, 64 + (size_t)((k * 7 + i * 13) % 2000), i % 4 ? 0 : 256,
					"stress", &offs[i]) < 0)
				return 1;
			/* Own the memory: a pattern another process must not touch. */
			memset(mpops_ptr(mpops_region_base(r), offs[i]), 0x40 + i % 32, 64);
		}
		for (int i = 0; i < 32; i++) {
			uint8_t *p = mpops_ptr(mpops_region_base(r), offs[i]);

			for (int b = 0; b < 64; b++)
				bad |= p[b] != 0x40 + i % 32;
			bad |= mpops_free(r, offs[i]) != 0;
		}
	}
	printf("stress bad=%d\n", bad);
	return bad;
}

/*
 * Use the test's packet pool while the test process and another secondary
 * do the same, and free buffers the test process allocated.
 */
static int cmd_pktstress(struct mpops_region *r, int rounds)
{
	struct pkt_xfer_shared *x = root(r, PKT_MP_XFER);
	struct pkt_stress_stats st = { 0 };
	struct mpops_pktpool *p;
	mpops_off_t off;
	time_t end;
	int rc;

	if ((rc = mpops_root_get(r, PKT_MP_POOL, &off)) < 0 ||
	    (rc = mpops_pktpool_open(r, off, &p)) < 0) {
		printf("pktpool open=%d\n", rc);
		return 1;
	}
	for (int k = 0; k < rounds; k++) {
		pkt_stress_round(p, (uint32_t)getpid(), (unsigned)k, &st);
		if (k % 8 == 0)
			pkt_stress_take(p, x, &st);
	}
	/* Make sure some of the test's buffers were freed here. */
	end = time(NULL) + 20;
	while (st.xfer < 100 && time(NULL) < end) {
		pkt_stress_take(p, x, &st);
		sched_yield();
	}
	mpops_pktpool_close(p);
	__atomic_add_fetch(&x->done, 1, __ATOMIC_ACQ_REL);
	printf("pktstress bad=%u xfer=%u enobufs=%u\n", st.bad, st.xfer, st.enobufs);
	return st.bad != 0 || st.xfer < 100;
}

/*
 * Hold buffers of the test's pool, then wait to be killed: 40 allocated
 * and 16 of them freed into this handle's cache, 8 held as they are, 8
 * as two chains of four, and 8 handed off to the test through the
 * transfer slots (filled with the hand-off pattern). With "leave": exit
 * without freeing or closing anything instead.
 */
static int cmd_pkthold(struct mpops_region *r, int leave)
{
	struct pkt_xfer_shared *x = root(r, PKT_MP_XFER);
	void *base = mpops_region_base(r);
	struct mpops_pkt *m[40];
	struct mpops_pktpool *p;
	mpops_off_t off;
	int rc;

	if ((rc = mpops_root_get(r, PKT_MP_POOL, &off)) < 0 ||
	    (rc = mpops_pktpool_open(r, off, &p)) < 0 ||
	    (rc = mpops_pkt_alloc_bulk(p, m, 40)) < 0) {
		printf("pkthold=%d\n", rc);
		return 1;
	}
	mpops_pkt_free_bulk(p, m, 16);
	for (int c = 0; c < 2; c++)
		for (int k = 0; k < 3; k++)
			m[24 + 4 * c + k]->next = mpops_off(base, m[25 + 4 * c + k]);
	for (int i = 0; i < 8; i++)
		pkt_stress_fill(base, m[32 + i], PKT_XFER_SALT);
	if ((rc = mpops_pkt_handoff(m + 32, 8)) < 0)
		return 1;
	for (int i = 0; i < 8; i++)
		x->slot[i] = mpops_off(base, m[32 + i]);
	if (leave) {
		/* Detached, the pool handle never closed: an exit that leaks. */
		mpops_region_detach(r);
		printf("leaving\n");
		fflush(stdout);
		_exit(0);
	}
	printf("holding\n");
	fflush(stdout);
	for (;;)
		pause();
}

/* Free the test pool's buffer at region offset @off through a handle of
 * this process; print what free returned. */
static int cmd_pktfree(struct mpops_region *r, mpops_off_t off)
{
	struct mpops_pktpool *p;
	mpops_off_t pool;
	int rc;

	if ((rc = mpops_root_get(r, PKT_MP_POOL, &pool)) < 0 ||
	    (rc = mpops_pktpool_open(r, pool, &p)) < 0) {
		printf("pktpool open=%d\n", rc);
		return 1;
	}
	rc = mpops_pkt_free(p, mpops_ptr(mpops_region_base(r), off));
	mpops_pktpool_close(p);
	printf("pktfree=%d\n", rc);
	return 0;
}

/* Die holding the pool's ring lock, as a process killed mid-refill would. */
static int cmd_pktdie(struct mpops_region *r)
{
	struct pktpool_shared *sh;
	struct pkt_ring_shared *rg;
	mpops_off_t off;

	if (mpops_root_get(r, PKT_MP_POOL, &off) < 0)
		return 1;
	sh = mpops_ptr(mpops_region_base(r), off);
	rg = mpops_ptr(mpops_region_base(r), sh->ring_off);
	pthread_mutex_lock(&rg->lock.m);
	printf("locked\n");
	fflush(stdout);
	_exit(0);
}

static volatile sig_atomic_t stop;
static void on_term(int sig) { (void)sig; stop = 1; }

int main(int argc, char **argv)
{
	struct mpops_region *r;
	const char *cmd;
	int rc, bad = 0;

	setvbuf(stdout, NULL, _IOLBF, 0);
	mpops_log_set(log_out, NULL);
	if (argc < 4) {
		fprintf(stderr, "usage: mp-secondary CMD RUNDIR REGION [ARG]\n");
		return 2;
	}
	cmd = argv[1];
	if (strcmp(cmd, "nobody") == 0) {
		/* Drop to an unprivileged uid first. */
		if (as_user(65534, 65534) < 0) {
			perror("setresuid");
			return 2;
		}
		r = attach(argv[2], argv[3], 0, &rc);
		if (r)
			mpops_region_detach(r);
		return rc == -EACCES ? 0 : 1;
	}
	if (strcmp(cmd, "as") == 0) {
		/* ARG UID:GID:ALLOW: attach as that user, naming group ALLOW. */
		long allow;
		unsigned mode;

		if (argc < 5 || as_user_spec(argv[4], &allow, &mode) < 0) {
			perror("as UID:GID:ALLOW");
			return 2;
		}
		r = attach_as(argv[2], argv[3], allow < 0 ? 0 : MPOPS_ATTACH_F_GROUP,
			      allow < 0 ? 0 : (uint32_t)allow, &rc);
		if (r)
			mpops_region_detach(r);
		return 0;
	}
	r = attach(argv[2], argv[3],
		   strcmp(cmd, "readonly") == 0 || strcmp(cmd, "info") == 0 ? MPOPS_ATTACH_F_READONLY : 0,
		   &rc);
	if (strcmp(cmd, "attach") == 0) {
		if (r)
			mpops_region_detach(r);
		return rc == 0 ? 0 : 1;
	}
	if (!r)
		return 1;
	if (strcmp(cmd, "resolve") == 0) {
		bad = cmd_resolve(r);
	} else if (strcmp(cmd, "origin") == 0) {
		bad = cmd_origin(r);
	} else if (strcmp(cmd, "request") == 0) {
		bad = cmd_request(r, argc > 4 ? (unsigned)atoi(argv[4]) : 600);
	} else if (strcmp(cmd, "toomany") == 0) {
		bad = cmd_toomany(r);
	} else if (strcmp(cmd, "slot") == 0) {
		bad = cmd_slot(r);
	} else if (strcmp(cmd, "allocstress") == 0) {
		bad = cmd_allocstress(r, argc > 4 ? atoi(argv[4]) : 200);
	} else if (strcmp(cmd, "pktdie") == 0) {
		bad = cmd_pktdie(r);
	} else if (strcmp(cmd, "pktfree") == 0) {
		bad = argc > 4 ? cmd_pktfree(r, strtoull(argv[4], NULL, 0)) : 2;
	} else if (strcmp(cmd, "pkthold") == 0 || strcmp(cmd, "pktleave") == 0) {
		bad = cmd_pkthold(r, strcmp(cmd, "pktleave") == 0);
	} else if (strcmp(cmd, "pktstress") == 0) {
		bad = cmd_pktstress(r, argc > 4 ? atoi(argv[4]) : 2000);
	} else if (strcmp(cmd, "audit") == 0) {
		bad = cmd_audit(r);
	} else if (strcmp(cmd, "info") == 0) {
		bad = mpops_info_print(r, stdout, MPOPS_INFO_F_JSON) != 0;
	} else if (strcmp(cmd, "readonly") == 0) {
		mpops_off_t off;
		int a = mpops_alloc(r, 64, 0, "x", &off);

		printf("alloc=%d\n", a);
		bad = a != -EROFS || mpops_root_get(r, "devs", &off) != 0;
	} else if (strcmp(cmd, "hold") == 0) {
		signal(SIGTERM, on_term);
		printf("holding\n");
		fflush(stdout);
		while (!stop)
			pause();
	} else if (strcmp(cmd, "wait-primary") == 0) {
		/* Wait for the primary to go away; report what calls return. */
		struct mpops_msg *req = calloc(1, sizeof(*req)), *rep = calloc(1, sizeof(*rep));

		printf("waiting\n");
		fflush(stdout);
		for (int i = 0; i < 5000 && mpops_region_primary_check(r) == 0; i++)
			usleep(1000);
		req->type = DEMO_MSG_ECHO;
		printf("check=%d request=%d\n", mpops_region_primary_check(r),
		       mpops_channel_request(r, req, rep, 1000));
		free(req);
		free(rep);
	} else {
		fprintf(stderr, "unknown command %s\n", cmd);
		bad = 2;
	}
	mpops_region_detach(r);
	printf("done=%d\n", bad);
	return bad;
}
