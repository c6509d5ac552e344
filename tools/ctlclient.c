// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Control-socket client (ctlclient.h).  Lines are read with MSG_PEEK up to
 * the newline, so nothing past one message is consumed and no per-connection
 * buffer is needed.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "ctlclient.h"
#include "hecache/ctl.h"

#define MAX_REPLY (64u << 20)

/* Unescapes the octal escapes (\040) of a mountinfo field in place. */
static void unescape(char *s)
{
	char *d = s;
	for (; *s; s++) {
		if (s[0] == '\\' && s[1] >= '0' && s[1] <= '3' && s[2] && s[3]) {
			*d++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
			s += 3;
		} else {
			*d++ = *s;
		}
	}
	*d = 0;
}

/*
 * The backing directory of the hecache-fs mount at mountpoint (or of the
 * only one when mountpoint is NULL).  Returns 0, or -1 after a message.
 */
static int find_mount(const char *mountpoint, char *backing, size_t len, char *msg, size_t msglen)
{
	char want[PATH_MAX] = "";
	if (mountpoint && !realpath(mountpoint, want)) {
		snprintf(msg, msglen, "%s: %s", mountpoint, strerror(errno));
		return -1;
	}
	FILE *f = fopen("/proc/self/mountinfo", "r");
	if (!f) {
		snprintf(msg, msglen, "/proc/self/mountinfo: %s", strerror(errno));
		return -1;
	}
	char line[3 * PATH_MAX];
	int found = 0;
	while (fgets(line, sizeof(line), f)) {
		/* id parent maj:min root mountpoint opts [optional...] - fstype source superopts */
		char *sep = strstr(line, " - ");
		if (!sep)
			continue;
		char *save = NULL, *mp = NULL, *tok = strtok_r(line, " ", &save);
		for (int i = 0; tok && i < 4; i++) {
			tok = strtok_r(NULL, " ", &save);
			if (i == 3)
				mp = tok;
		}
		char *fstype = strtok_r(sep + 3, " ", &save);
		char *source = strtok_r(NULL, " ", &save);
		if (!mp || !fstype || !source || strcmp(fstype, "fuse.hecache-fs"))
			continue;
		unescape(mp);
		unescape(source);
		if (mountpoint && strcmp(mp, want))
			continue;
		if (found++ && !mountpoint) {
			fclose(f);
			snprintf(msg, msglen,
				 "several hecache-fs mounts; name one with -m MOUNTPOINT or -b BACKING");
			return -1;
		}
		snprintf(backing, len, "%s", source);
	}
	fclose(f);
	if (!found) {
		if (mountpoint)
			snprintf(msg, msglen, "%s: not a hecache-fs mount", mountpoint);
		else
			snprintf(msg, msglen, "no hecache-fs mount found (is hecache-fs running?)");
		return -1;
	}
	return 0;
}

int hc_ctl_find(const char *sock, const char *backing, const char *mountpoint, char *out,
		size_t len, char *msg, size_t msglen)
{
	char b[PATH_MAX];
	if (!sock && !backing && !mountpoint)
		sock = getenv("HECACHE_SOCKET");
	if (sock && *sock) {
		snprintf(out, len, "%s", sock);
		return 0;
	}
	if (!backing) {
		if (find_mount(mountpoint, b, sizeof(b), msg, msglen))
			return -1;
		backing = b;
	}
	if ((size_t)snprintf(out, len, "%s/%s", backing, HC_CTL_SOCK) >= len) {
		snprintf(msg, msglen, "%s/%s: path too long", backing, HC_CTL_SOCK);
		return -1;
	}
	return 0;
}

int hc_ctl_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	if (strlen(path) >= sizeof(a.sun_path))
		return -ENAMETOOLONG;
	strcpy(a.sun_path, path);
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0) {
		int err = -errno;
		close(fd);
		return err;
	}
	return fd;
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
		if (w < 0 && errno == ENOTSOCK)
			w = write(fd, p, n);	/* a serial or virtio-serial port */
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return errno == EPIPE ? -ECONNRESET : -errno;
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

int hc_ctl_send(int fd, struct json_object *req)
{
	if (!json_object_object_get_ex(req, "v", NULL))
		json_object_object_add(req, "v", json_object_new_int(HC_CTL_PROTOCOL));
	const char *s = json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
	size_t n = strlen(s);
	char *line = malloc(n + 2);
	if (!line)
		return -ENOMEM;
	memcpy(line, s, n);
	line[n] = '\n';
	int err = write_all(fd, line, n + 1);
	free(line);
	return err;
}

int hc_ctl_recv(int fd, int timeout_ms, struct json_object **msg)
{
	char *buf = NULL;
	size_t len = 0, cap = 0;
	int err;
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int r = poll(&p, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			err = -errno;
			goto fail;
		}
		if (r == 0) {
			err = -ETIMEDOUT;
			goto fail;
		}
		if (cap - len < 65536) {
			cap = cap ? cap * 2 : 131072;
			if (cap > MAX_REPLY) {
				err = -E2BIG;
				goto fail;
			}
			char *nb = realloc(buf, cap);
			if (!nb) {
				err = -ENOMEM;
				goto fail;
			}
			buf = nb;
		}
		ssize_t n = recv(fd, buf + len, 65536, MSG_PEEK);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			err = -errno;
			goto fail;
		}
		if (n == 0) {
			err = -ECONNRESET;
			goto fail;
		}
		char *nl = memchr(buf + len, '\n', (size_t)n);
		size_t take = nl ? (size_t)(nl - (buf + len)) + 1 : (size_t)n;
		if (recv(fd, buf + len, take, 0) != (ssize_t)take) {
			err = -EIO;
			goto fail;
		}
		len += take;
		if (nl)
			break;
	}
	buf[len - 1] = 0;
	enum json_tokener_error jerr;
	*msg = json_tokener_parse_verbose(buf, &jerr);
	free(buf);
	if (!*msg || !json_object_is_type(*msg, json_type_object)) {
		json_object_put(*msg);
		*msg = NULL;
		return -EPROTO;
	}
	return 0;
fail:
	free(buf);
	return err;
}

int hc_ctl_call(int fd, struct json_object *req, struct json_object **reply)
{
	int err = hc_ctl_send(fd, req);
	/*
	 * A daemon refusing the peer (EACCES) replies and closes at once; the
	 * send may then fail with EPIPE while that reply waits to be read.
	 */
	if (err && err != -ECONNRESET)
		return err;
	for (;;) {
		err = hc_ctl_recv(fd, -1, reply);
		if (err)
			return err;
		if (json_object_object_get_ex(*reply, "ok", NULL))
			return 0;
		json_object_put(*reply);	/* a pushed request, not our reply */
	}
}

const char *hc_ctl_errtext(struct json_object *reply, char *buf, size_t len)
{
	struct json_object *e = NULL, *m = NULL;
	json_object_object_get_ex(reply, "error", &e);
	json_object_object_get_ex(reply, "message", &m);
	snprintf(buf, len, "%s: %s", e ? json_object_get_string(e) : "error",
		 m ? json_object_get_string(m) : "(no message)");
	return buf;
}
