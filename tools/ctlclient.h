/* SPDX-License-Identifier: GPL-2.0-or-later */
/*
 * Client side of the control socket (doc/ctl-protocol.md), shared by hectl,
 * hecache-agent and reconcile-defrag: find the socket, connect, send one
 * request and read its reply, read lines the daemon pushes (agents).
 * Blocking I/O on one file descriptor; not thread-safe per connection.
 */
#ifndef HC_CTLCLIENT_H
#define HC_CTLCLIENT_H

#include <stddef.h>

#include <json-c/json.h>

/*
 * Finds the control socket into out (len bytes).  sock: an explicit path,
 * used as is.  Else backing: BACKING/ctl.sock.  Else mountpoint: the
 * hecache-fs mount there (from /proc/self/mountinfo, whose source is the
 * backing directory).  Else $HECACHE_SOCKET, else the only hecache-fs mount
 * of the machine.  Returns 0, or -1 after writing one line to msg.
 */
int hc_ctl_find(const char *sock, const char *backing, const char *mountpoint, char *out,
		size_t len, char *msg, size_t msglen);

/* Connects; returns the socket fd or -errno. */
int hc_ctl_connect(const char *path);

/*
 * Sends req (a JSON object; "v" added) as one line; reads the reply line
 * into *reply (caller frees with json_object_put).  Lines the daemon pushes
 * (with an "op" member and no "ok") before the reply are skipped.
 * Returns 0 (check "ok" in the reply), -EPROTO for a reply that is not JSON,
 * -ECONNRESET when the daemon closed the connection, or -errno.
 */
int hc_ctl_call(int fd, struct json_object *req, struct json_object **reply);

/*
 * Sends req as one line without waiting; 0 or -errno.  fd may also be a
 * serial or virtio-serial port (write(2) is used when it is not a socket;
 * the caller ignores SIGPIPE if it can be a pipe).
 */
int hc_ctl_send(int fd, struct json_object *req);

/*
 * Reads one line (a reply or a pushed request) within timeout_ms (-1:
 * forever); fd must be a socket (the line is found with MSG_PEEK).
 * Returns 0 with *msg set, -ETIMEDOUT, -ECONNRESET, -EPROTO or -errno.
 */
int hc_ctl_recv(int fd, int timeout_ms, struct json_object **msg);

/* The reply's "error" and "message" as "ENOENT: domain vm9: not found". */
const char *hc_ctl_errtext(struct json_object *reply, char *buf, size_t len);

#endif
