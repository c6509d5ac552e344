// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * libFuzzer harness of the control protocol's request handling: each input
 * is one request line given to hc_ctl_handle() on a real file system (a
 * backing directory under /var/tmp, the sync engine, curves on), so the
 * parser and every request handler run.  The reply must be one JSON object
 * with "v" and "ok".  Inputs naming trace requests are skipped: they create
 * files at paths taken from the input.  Built and run by tests/fuzz/run.sh.
 */
#include "config.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <json-c/json.h>

#include "ctl.h"
#include "ioeng.h"
#include "sb.h"
#include "volume.h"

static struct hc_ctl *ctl;

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static char dir[] = "/var/tmp/hc-fuzz-ctl.XXXXXX";
	char msg[512];
	struct hc_backing *b;
	struct hc_ioeng *e;
	struct hc_fs *fs;
	struct hc_mrc_config mrc = { .sampled = 1, .rate = 1, .sample_max = 1024,
				     .max_tracked = 65536, .bucket_blocks = 16 };
	if (!mkdtemp(dir) || hc_backing_open(dir, 1, &b, msg, sizeof(msg)) ||
	    hc_ioeng_create("sync", 16, 0, &e) ||
	    hc_fs_create(b, e, 1 << 20, 0, &mrc, &fs, msg, sizeof(msg))) {
		fprintf(stderr, "fuzz_ctl: set-up failed in %s: %s\n", dir, msg);
		abort();
	}
	struct hc_ctl_info info = { .fs = fs, .backing = dir, .mountpoint = "/fuzz",
				    .io_engine = "sync", .mrc_mode = "sampled",
				    .ghost_bytes = 65536ull * 4096, .owner = getuid() };
	if (hc_ctl_create(&info, &ctl))
		abort();
	fprintf(stderr, "fuzz_ctl: backing directory %s (remove it afterwards)\n", dir);
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (memmem(data, size, "trace", 5))
		return 0;
	char *reply = hc_ctl_handle(ctl, (const char *)data, size);
	struct json_object *o = json_tokener_parse(reply);
	struct json_object *v, *ok;
	if (!o || !json_object_is_type(o, json_type_object) ||
	    !json_object_object_get_ex(o, "v", &v) || !json_object_object_get_ex(o, "ok", &ok) ||
	    strchr(reply, '\n')) {
		fprintf(stderr, "fuzz_ctl: bad reply: %s\n", reply);
		abort();
	}
	json_object_put(o);
	free(reply);
	return 0;
}
