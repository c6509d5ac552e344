/* SPDX-License-Identifier: GPL-2.0-or-later */
/* The libfuse low-level op table (fs_ops.c) and the daemon it serves. */
#ifndef HC_FS_OPS_H
#define HC_FS_OPS_H

#define FUSE_USE_VERSION 314
#include <fuse_lowlevel.h>

struct hc_fs;
struct hc_furing;

/* userdata of the FUSE session. */
struct hc_daemon {
	struct hc_fs *fs;
};

extern const struct fuse_lowlevel_ops hc_fs_ops;

/*
 * Install the session's I/O hooks on a mounted session (see DOC:
 * FUSE_HANDLE_KILLPRIV_V2 in fs_ops.c); call before the session loop.  With
 * fr, the INIT reply asks for FUSE over io_uring when the kernel offers it
 * and replies to ring requests go to fr (DOC: FUSE over io_uring in
 * furing.c).  Returns 0 or -errno.
 */
int hc_fs_ops_attach_io(struct fuse_session *se, struct hc_furing *fr);

#endif
