/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include "demo_ops.h"
#include "helpers.h"

static struct mpops_region *r;
static char out[1 << 16];

static int echo(struct mpops_region *rg, const struct mpops_msg *req,
		struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)arg;
	if (req->len + 6 > MPOPS_MSG_DATA_MAX)
		return -EMSGSIZE;
	memcpy(reply->data, req->data, req->len);
	memcpy(reply->data + req->len, "-reply", 6);
	reply->len = req->len + 6;
	return 0;
}

/* Eventfds live until the next test process: the reply borrows them. */
static int held[4096], nheld;

static int get_fds(struct mpops_region *rg, const struct mpops_msg *req,
		   struct mpops_msg *reply, void *arg)
{
	uint32_t n;

	(void)rg; (void)arg;
	if (req->len != sizeof(n))
		return -EINVAL;
	memcpy(&n, req->data, sizeof(n));
	if (n > 4096)
		return -E2BIG;
	for (uint32_t i = 0; i < n; i++) {
		held[nheld] = eventfd(i + 1, EFD_CLOEXEC);
		mpops_msg_add_fd(reply, held[nheld++]);
	}
	return 0;
}

static int put_fds_ok;

static int put_fds(struct mpops_region *rg, const struct mpops_msg *req,
		   struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)reply; (void)arg;
	for (uint32_t i = 0; i < req->nfds; i++) {
		eventfd_t v;

		if (eventfd_read(req->fds[i], &v) < 0 || v != 1001 + i)
			return -EBADMSG;
	}
	put_fds_ok = (int)req->nfds;
	return 0;
}

static int slow(struct mpops_region *rg, const struct mpops_msg *req,
		struct mpops_msg *reply, void *arg)
{
	(void)rg; (void)req; (void)reply; (void)arg;
	usleep(1500 * 1000);
	return 0;
}

static void setup(void)
{
	logcap_start();
	rundir_make();
	r = primary_make("chan");
	cr_assert_not_null(r);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_ECHO, echo, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_GET_FDS, get_fds, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_PUT_FDS, put_fds, NULL), 0);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_SLOW, slow, NULL), 0);
}

/* A misbehaving peer (chan-rogue), killed by pid in teardown if still running. */
static pid_t rogue = -1;
static int rogue_fd = -1;

static void teardown(void)
{
	if (rogue > 0) {
		kill(rogue, SIGKILL);
		waitpid(rogue, NULL, 0);
		close(rogue_fd);
		rogue = -1;
	}
	if (r)
		mpops_region_detach(r);
	for (int i = 0; i < nheld; i++)
		close(held[i]);
	rundir_remove();
}

TestSuite(channel, .init = setup, .fini = teardown, .timeout = 60);

Test(channel, requests_with_fds_past_the_kernel_limit_both_ways)
{
	const char *args[] = { "request", rundir_path(), "chan", "600", NULL };
	int st = peer_run("mp-secondary", args, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "echo=0 'hello from "), "%s", out);
	cr_assert(strstr(out, "get_fds=0 n=600"), "%s", out);
	cr_assert(strstr(out, "put_fds=0"), "%s", out);
	cr_assert(strstr(out, "unknown=-95"), "%s", out);	/* -ENOTSUP */
	cr_assert(strstr(out, "slow=-110"), "%s", out);		/* -ETIMEDOUT */
	cr_assert(strstr(out, "after-timeout=0 'ok-reply'"), "%s", out);
	cr_assert_eq(logcap_count("sent request type 0x7777, which has no handler"), 1);
	cr_assert(strstr(out, "did not answer request"), "%s", out);
}

Test(channel, register_checks_type_duplicates_and_role)
{
	cr_assert_eq(mpops_channel_register(r, 5, echo, NULL), -EINVAL);
	cr_assert_eq(mpops_channel_register(r, DEMO_MSG_ECHO, echo, NULL), -EEXIST);
	cr_assert_eq(mpops_channel_register(r, MPOPS_MSG_USER, NULL, NULL), -EINVAL);
	cr_assert_eq(mpops_channel_unregister(r, DEMO_MSG_ECHO), 0);
	cr_assert_eq(mpops_channel_unregister(r, DEMO_MSG_ECHO), -ENOENT);
	cr_assert_eq(logcap_count("already has a handler"), 1);
	{
		struct mpops_msg m = { 0 }, rep;

		cr_assert_eq(mpops_channel_request(r, &m, &rep, 0), -EPERM);
		cr_assert_eq(logcap_count("only a secondary of region 'chan' sends requests"), 1);
		cr_assert_eq(mpops_msg_add_fd(&m, -1), -EBADF);
	}
}

Test(channel, other_uid_is_refused_by_credentials)
{
	const char *args[] = { "nobody", rundir_path(), "chan2", NULL };
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .socket_mode = 0666,
	};
	struct mpops_region *r2;
	int st;

	/* One region per process: make this one with a world-writable socket. */
	mpops_region_detach(r);
	r = NULL;
	chmod(rundir_path(), 0755);
	cr_assert_eq(mpops_region_create("chan2", &o, &r2), 0);
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "attach=-13"), "%s", out);
	cr_assert(strstr(out, "the primary refused this process (uid 65534)"), "%s", out);
	cr_assert_eq(logcap_count("refused a control connection from pid"), 1);
	mpops_region_detach(r2);
}

Test(channel, socket_permissions_deny_other_uids)
{
	const char *args[] = { "nobody", rundir_path(), "chan", NULL };
	int st;

	chmod(rundir_path(), 0755);
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "attach=-13"), "%s", out);
	cr_assert(strstr(out, "permission denied on "), "%s", out);
}

static int raw_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/chan.sock", rundir_path());
	cr_assert_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	return fd;
}

Test(channel, malformed_messages_drop_the_sender_not_the_primary)
{
	const char *args[] = { "attach", rundir_path(), "chan", NULL };
	static const uint32_t hdr_bad_len[8] = { 0x4843504d, 1 | (1 << 16), 1, 0, 1, 4000, 0, 0 };
	char junk[64];
	int fd, st;

	memset(junk, 0x5a, sizeof(junk));
	fd = raw_connect();
	cr_assert_eq(send(fd, junk, sizeof(junk), MSG_NOSIGNAL), (ssize_t)sizeof(junk));
	cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);	/* closed on us */
	close(fd);
	fd = raw_connect();
	cr_assert_eq(send(fd, hdr_bad_len, sizeof(hdr_bad_len), MSG_NOSIGNAL), (ssize_t)sizeof(hdr_bad_len));
	cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);
	close(fd);
	/* A request before the hand-shake. */
	{
		static const uint32_t ping_first[8] = { 0x4843504d, 1 | (1 << 16), 2, 0, 1, 0, 0, 0 };

		fd = raw_connect();
		cr_assert_eq(send(fd, ping_first, sizeof(ping_first), MSG_NOSIGNAL), (ssize_t)sizeof(ping_first));
		cr_assert_eq(recv(fd, junk, sizeof(junk), 0), 0);
		close(fd);
	}
	cr_assert_eq(logcap_count("malformed control message"), 3);
	/* The primary still serves everyone else. */
	st = peer_run("mp-secondary", args, out, sizeof(out));
	cr_assert(EXITED_OK(st), "%s", out);
}

Test(channel, primary_death_is_enotconn_for_the_secondary)
{
	const char *args[] = { rundir_path(), "dies", NULL };
	struct mpops_attach_opts ao = { .sz = sizeof(ao), .runtime_dir = rundir_path() };
	struct mpops_msg req = { .type = DEMO_MSG_ECHO }, rep;
	struct mpops_region *s;
	char buf[256], line[96];
	int fd;
	pid_t pid;

	/* This test process is the secondary here; mp-primary is the primary. */
	mpops_region_detach(r);
	r = NULL;
	pid = peer_start("mp-primary", args, &fd);
	cr_assert_gt(pid, 0);
	cr_assert_eq(peer_wait_line(fd, "ready", buf, sizeof(buf), 10000), 0, "%s", buf);
	cr_assert_eq(mpops_region_attach("dies", &ao, &s), 0);
	cr_assert_eq(mpops_region_primary_pid(s), pid);
	cr_assert_eq(mpops_channel_register(s, DEMO_MSG_ECHO, echo, NULL), -EPERM);
	cr_assert_eq(mpops_region_primary_check(s), 0);
	cr_assert_eq(mpops_channel_request(s, &req, &rep, 0), -ENOTSUP);

	kill(pid, SIGKILL);
	buf[0] = '\0';
	peer_finish(pid, fd, buf, sizeof(buf), 5000);
	cr_assert_eq(mpops_channel_request(s, &req, &rep, 0), -ENOTCONN);
	cr_assert_eq(mpops_region_primary_check(s), -ENOTCONN);
	snprintf(line, sizeof(line), "its primary (pid %d) has exited", (int)pid);
	cr_assert_eq(logcap_count(line), 1);	/* said once */
	cr_assert_eq(mpops_region_detach(s), 0);
}

/* ==== one peer cannot stop the others ==================================== */

static pid_t rogue_start(const char *cmd, const char *region, const char *n)
{
	const char *args[] = { cmd, rundir_path(), region, n, NULL };

	rogue = peer_start("chan-rogue", args, &rogue_fd);
	cr_assert_gt(rogue, 0);
	return rogue;
}

/* Let the rogue finish (killed after @timeout_ms); its exit status. */
static int rogue_finish(int timeout_ms)
{
	int st = peer_finish(rogue, rogue_fd, out, sizeof(out), timeout_ms);

	rogue = -1;
	return st;
}

/* Run the rogue to its end (it exits 0 when it could misbehave as told);
 * its pid, for the lines the primary logged about it. */
static pid_t rogue_run(const char *cmd, const char *region, const char *n)
{
	pid_t pid = rogue_start(cmd, region, n);
	int st = rogue_finish(15000);

	cr_assert(EXITED_OK(st), "%s", out);
	return pid;
}

/* The number after "key=" in @s, or LONG_MIN. */
static long val(const char *s, const char *key)
{
	char k[64];
	const char *p;

	snprintf(k, sizeof(k), "%s=", key);
	p = strstr(s, k);
	return p ? strtol(p + strlen(k), NULL, 10) : LONG_MIN;
}

static int logged_for(const char *fmt, pid_t pid)
{
	char line[160];

	snprintf(line, sizeof(line), fmt, (int)pid);
	return logcap_count(line);
}

Test(channel, a_client_that_never_reads_its_replies_is_closed_and_others_still_attach)
{
	pid_t pid = rogue_start("noread", "chan", NULL);
	int st;

	cr_assert_eq(peer_wait_line(rogue_fd, "stuffed", out, sizeof(out), 10000), 0, "%s", out);
	st = rogue_finish(15000);
	cr_assert(EXITED_OK(st), "%s", out);
	/* A real attach, within its 1.5 s, while the rogue was still connected. */
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(val(out, "rogue-open"), 1, "%s", out);
	/* The rogue itself is closed once it left no room for 2 s. */
	cr_assert_lt(val(out, "closed ms"), 5000, "%s", out);
	cr_assert_eq(logged_for("pid %d does not read its replies", pid), 1);
}

Test(channel, a_reply_that_waits_for_room_keeps_its_fds_after_the_handler_returned)
{
	int st;

	rogue_start("noreadfds", "chan", NULL);
	cr_assert_eq(peer_wait_line(rogue_fd, "stuffed", out, sizeof(out), 10000), 0, "%s", out);
	/* The primary stopped reading the rogue: a reply waits for room.
	 * Its owner closes every fd the handler lent meanwhile. */
	for (int i = __atomic_load_n(&nheld, __ATOMIC_ACQUIRE); i-- > 0;)
		close(held[i]);
	__atomic_store_n(&nheld, 0, __ATOMIC_RELEASE);
	kill(rogue, SIGUSR1);
	st = rogue_finish(10000);
	cr_assert(EXITED_OK(st), "%s", out);
	/* Every request answered, each reply with its own eventfd, the one
	 * that waited too; the connection stayed. */
	cr_assert_eq(val(out, "replies"), val(out, "stuffed requests"), "%s", out);
	cr_assert_eq(val(out, "good"), val(out, "replies"), "%s", out);
	cr_assert_eq(val(out, "eof"), 0, "%s", out);
	cr_assert_eq(logcap_count("cannot keep the fds"), 0);
}

Test(channel, a_request_sent_slowly_is_closed_after_the_peer_timeout_and_others_attach_meanwhile)
{
	pid_t pid = rogue_run("slowfds", "chan", "1000");

	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(val(out, "rogue-open"), 1, "%s", out);
	/* Closed 2 s after its first record: not one 1.5 s wait per record. */
	cr_assert_lt(val(out, "closed ms"), 4000, "%s", out);
	cr_assert_geq(val(out, "closed ms"), MPOPS_CHANNEL_PEER_TIMEOUT_MS - 100, "%s", out);
	cr_assert_eq(logged_for("pid %d announced 1000 fds in request 0x1001 but sent", pid), 1);
}

Test(channel, a_request_announcing_absurd_fd_counts_is_closed_at_its_first_record)
{
	pid_t pid = rogue_run("slowfds", "chan", "60000");

	cr_assert_lt(val(out, "closed ms"), 300, "%s", out);
	cr_assert_eq(val(out, "attach"), 0, "%s", out);
	cr_assert_eq(logged_for("pid %d announced 60000 fds in request 0x1001, more than the 1024", pid), 1);
}

Test(channel, a_request_with_more_fds_than_the_primary_takes_is_e2big_at_the_sender)
{
	const char *args[] = { "toomany", rundir_path(), "chan", NULL };
	int st = peer_run("mp-secondary", args, out, sizeof(out));

	cr_assert(EXITED_OK(st), "%s", out);
	cr_assert(strstr(out, "toomany=-7 then=0"), "%s", out);	/* -E2BIG, still connected */
	cr_assert(strstr(out, "carries 1025 fds, more than the 1024 the primary accepts"), "%s", out);
}

Test(channel, a_peer_of_another_uid_is_refused_before_its_payload_is_read)
{
	struct mpops_region_opts o = {
		.sz = sizeof(o), .runtime_dir = rundir_path(), .socket_mode = 0666,
	};
	pid_t pid;

	/* One region per process: make this one with a world-writable socket. */
	mpops_region_detach(r);
	r = NULL;
	chmod(rundir_path(), 0755);
	cr_assert_eq(mpops_region_create("chan3", &o, &r), 0);
	/* It announces 1000 fds, sends 250, and waits: the refusal does not. */
	pid = rogue_run("refused", "chan3", "1000");
	cr_assert_eq(val(out, "reply"), -EACCES, "%s", out);
	cr_assert_lt(val(out, "ms"), 1000, "%s", out);
	cr_assert_eq(logged_for("refused a control connection from pid %d", pid), 1);
	cr_assert_eq(logcap_count("malformed"), 0);
}

Test(channel, a_connection_without_a_hand_shake_is_closed_after_the_peer_timeout)
{
	pid_t pid = rogue_run("idle", "chan", NULL);

	cr_assert_lt(val(out, "closed ms"), 4000, "%s", out);
	cr_assert_eq(logged_for("pid %d has not completed a hand-shake within 2000 ms of connecting", pid), 1);
}
