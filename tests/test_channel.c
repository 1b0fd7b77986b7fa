/* SPDX-License-Identifier: BSD-3-Clause */
#include <criterion/criterion.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
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

static void teardown(void)
{
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
	cr_assert_eq(logcap_count("malformed control message"), 2);
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
