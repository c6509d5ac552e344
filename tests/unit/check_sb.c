// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of sb.c: the superblock's on-disk encoding (little-endian
 * fields, XXH64 checksum over every byte before it, round trip), refusal of
 * any single corrupted byte (-HC_ECORRUPT) and of a newer major version
 * (-HC_EVERSION); and hc_backing_open on real temporary directories:
 * formatting an empty one, refusing a non-empty one without hecache.sb with
 * nothing written, recovering from one bad copy, refusing two, the flock
 * against a second opener (-HC_ELOCKED), and hc_backing_write_sb alternating
 * copies with a growing generation.
 */
#include "config.h"

#include <check.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <xxhash.h>

#include "hecache/errors.h"
#include "hecache/format.h"
#include "sb.h"
#include "t_helpers.h"

static void sample_info(struct hc_sb_info *info)
{
	memset(info, 0, sizeof(*info));
	info->major = HC_SB_MAJOR;
	info->minor = HC_SB_MINOR + 3;
	info->block_size = HC_BLOCK_SIZE;
	for (int i = 0; i < 16; i++)
		info->uuid[i] = (uint8_t)(0xA0 + i * 7);
	info->generation = 0x0102030405060708ull;
	info->created = 1700000000ull;
	info->mounted = 1700000123ull;
	info->flags = HC_SB_F_CLEAN | 0x80000000u;
}

static void assert_info_eq(const struct hc_sb_info *a, const struct hc_sb_info *b)
{
	ck_assert_uint_eq(a->major, b->major);
	ck_assert_uint_eq(a->minor, b->minor);
	ck_assert_uint_eq(a->block_size, b->block_size);
	ck_assert_mem_eq(a->uuid, b->uuid, 16);
	ck_assert_uint_eq(a->generation, b->generation);
	ck_assert_uint_eq(a->created, b->created);
	ck_assert_uint_eq(a->mounted, b->mounted);
	ck_assert_uint_eq(a->flags, b->flags);
}

/* ---- encoding --------------------------------------------------------- */

START_TEST(test_sb_roundtrip)
{
	struct hc_sb_info in, out;
	struct hc_sb_disk d;
	sample_info(&in);
	hc_sb_encode(&in, &d);
	memset(&out, 0x5a, sizeof(out));
	ck_assert_int_eq(hc_sb_decode(&d, &out), 0);
	assert_info_eq(&in, &out);

	/* Random contents round-trip too. */
	uint64_t s = 7;
	for (int i = 0; i < 200; i++) {
		in.major = (uint16_t)t_rand_below(&s, HC_SB_MAJOR + 1);
		in.minor = (uint16_t)t_rand(&s);
		t_fill_random(in.uuid, 16, &s);
		in.generation = t_rand(&s);
		in.created = t_rand(&s);
		in.mounted = t_rand(&s);
		in.flags = (uint32_t)t_rand(&s);
		hc_sb_encode(&in, &d);
		ck_assert_int_eq(hc_sb_decode(&d, &out), 0);
		assert_info_eq(&in, &out);
	}
}
END_TEST

/* The layout of doc/format.md: fixed offsets, little-endian, XXH64 last. */
START_TEST(test_sb_layout)
{
	struct hc_sb_info in;
	struct hc_sb_disk d;
	sample_info(&in);
	memset(&d, 0xee, sizeof(d));
	hc_sb_encode(&in, &d);
	const uint8_t *raw = (const uint8_t *)&d;
	ck_assert_uint_eq(sizeof(d), 264);
	ck_assert_mem_eq(raw, HC_SB_MAGIC, 8);
	ck_assert_uint_eq(raw[8], HC_SB_MAJOR & 0xff);
	ck_assert_uint_eq(raw[9], HC_SB_MAJOR >> 8);
	ck_assert_uint_eq(raw[10] | raw[11] << 8, in.minor);
	ck_assert_uint_eq(raw[12] | raw[13] << 8 | raw[14] << 16 | (uint32_t)raw[15] << 24,
			  HC_BLOCK_SIZE);
	ck_assert_mem_eq(raw + 16, in.uuid, 16);
	/* generation 0x0102030405060708 little-endian at offset 32 */
	for (int i = 0; i < 8; i++)
		ck_assert_uint_eq(raw[32 + i], 8 - i);
	uint64_t v;
	memcpy(&v, raw + offsetof(struct hc_sb_disk, created), 8);
	ck_assert_uint_eq(le64toh(v), in.created);
	memcpy(&v, raw + offsetof(struct hc_sb_disk, mounted), 8);
	ck_assert_uint_eq(le64toh(v), in.mounted);
	uint32_t f;
	memcpy(&f, raw + offsetof(struct hc_sb_disk, flags), 4);
	ck_assert_uint_eq(le32toh(f), in.flags);
	/* reserved bytes are zero, whatever the buffer held before */
	for (size_t i = offsetof(struct hc_sb_disk, reserved0);
	     i < offsetof(struct hc_sb_disk, checksum); i++)
		ck_assert_msg(raw[i] == 0, "reserved byte %zu is %u", i, raw[i]);
	memcpy(&v, raw + offsetof(struct hc_sb_disk, checksum), 8);
	ck_assert_uint_eq(le64toh(v), XXH64(raw, offsetof(struct hc_sb_disk, checksum), 0));
	ck_assert_uint_eq(offsetof(struct hc_sb_disk, checksum), 256);
}
END_TEST

START_TEST(test_sb_corrupt_any_byte)
{
	struct hc_sb_info in, out;
	struct hc_sb_disk good, d;
	sample_info(&in);
	hc_sb_encode(&in, &good);
	for (size_t i = 0; i < sizeof(good); i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			d = good;
			((uint8_t *)&d)[i] ^= (uint8_t)(1u << bit);
			int r = hc_sb_decode(&d, &out);
			ck_assert_msg(r == -HC_ECORRUPT, "byte %zu bit %d flipped: decode = %d", i,
				      bit, r);
		}
	}
	/* All zeros (a hole) is not a superblock either. */
	memset(&d, 0, sizeof(d));
	ck_assert_int_eq(hc_sb_decode(&d, &out), -HC_ECORRUPT);
}
END_TEST

/* A valid checksum over a bad magic or block size is still refused. */
START_TEST(test_sb_bad_fields_valid_checksum)
{
	struct hc_sb_info in, out;
	struct hc_sb_disk d;
	sample_info(&in);
	hc_sb_encode(&in, &d);
	memcpy(d.magic, "HECACHF\0", 8);
	d.checksum = htole64(XXH64(&d, offsetof(struct hc_sb_disk, checksum), 0));
	ck_assert_int_eq(hc_sb_decode(&d, &out), -HC_ECORRUPT);

	static const uint32_t sizes[] = { 0, 512, 2048, 8192, 65536, 4095 };
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		in.block_size = sizes[i];
		hc_sb_encode(&in, &d);
		ck_assert_msg(hc_sb_decode(&d, &out) == -HC_ECORRUPT, "block size %u accepted",
			      sizes[i]);
	}
}
END_TEST

START_TEST(test_sb_versions)
{
	struct hc_sb_info in, out;
	struct hc_sb_disk d;
	sample_info(&in);
	in.major = HC_SB_MAJOR + 1;
	hc_sb_encode(&in, &d);
	ck_assert_int_eq(hc_sb_decode(&d, &out), -HC_EVERSION);
	in.major = 0xffff;
	hc_sb_encode(&in, &d);
	ck_assert_int_eq(hc_sb_decode(&d, &out), -HC_EVERSION);
	/* A newer minor of our major is compatible. */
	in.major = HC_SB_MAJOR;
	in.minor = 0xfffe;
	hc_sb_encode(&in, &d);
	ck_assert_int_eq(hc_sb_decode(&d, &out), 0);
	ck_assert_uint_eq(out.minor, 0xfffe);
}
END_TEST

/* ---- backing directory ------------------------------------------------ */

static char msg[512];

static char *sb_path(const char *dir)
{
	return t_path(dir, HC_SB_FILE);
}

/* Reads copy c of dir's superblock file straight from disk. */
static int read_copy(const char *dir, int c, struct hc_sb_info *info)
{
	char *p = sb_path(dir);
	int fd = open(p, O_RDONLY);
	ck_assert_msg(fd >= 0, "open %s: %s", p, strerror(errno));
	struct hc_sb_disk d;
	ssize_t n = pread(fd, &d, sizeof(d), (off_t)c * HC_SB_COPY_SIZE);
	close(fd);
	free(p);
	if (n != (ssize_t)sizeof(d))
		return -HC_ECORRUPT;
	return hc_sb_decode(&d, info);
}

/* XORs one byte of the superblock file. */
static void corrupt_byte(const char *dir, off_t off)
{
	char *p = sb_path(dir);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	unsigned char b;
	ck_assert_int_eq(pread(fd, &b, 1, off), 1);
	b ^= 0x10;
	ck_assert_int_eq(pwrite(fd, &b, 1, off), 1);
	close(fd);
	free(p);
}

static void write_copy_raw(const char *dir, int c, const struct hc_sb_info *info)
{
	struct hc_sb_disk d;
	hc_sb_encode(info, &d);
	char *p = sb_path(dir);
	int fd = open(p, O_RDWR);
	ck_assert_int_ge(fd, 0);
	t_pwrite_all(fd, &d, sizeof(d), (off_t)c * HC_SB_COPY_SIZE);
	close(fd);
	free(p);
}

static int open_backing(const char *dir, int fmt, struct hc_backing **b)
{
	msg[0] = 0;
	return hc_backing_open(dir, fmt, b, msg, sizeof(msg));
}

/* Formats t_dir, then writes `updates` more generations; returns the uuid. */
static void make_backing(int updates, uint8_t uuid[16])
{
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	for (int i = 0; i < updates; i++)
		ck_assert_int_eq(hc_backing_write_sb(b, 0), 0);
	memcpy(uuid, b->sb.uuid, 16);
	hc_backing_close(b);
}

START_TEST(test_backing_format_empty)
{
	struct hc_backing *b = NULL;
	time_t before = time(NULL);
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(b->formatted, 1);
	ck_assert_int_ge(b->dirfd, 0);
	ck_assert_int_ge(b->sbfd, 0);
	ck_assert_str_eq(b->path, t_dir);
	ck_assert_uint_eq(b->sb.major, HC_SB_MAJOR);
	ck_assert_uint_eq(b->sb.minor, HC_SB_MINOR);
	ck_assert_uint_eq(b->sb.block_size, HC_BLOCK_SIZE);
	ck_assert_uint_eq(b->sb.generation, 1);
	ck_assert_uint_ge(b->sb.created, (uint64_t)before);
	ck_assert_uint_le(b->sb.created, (uint64_t)time(NULL));
	static const uint8_t zero[16];
	ck_assert_msg(memcmp(b->sb.uuid, zero, 16) != 0, "uuid is all zero");
	uint8_t uuid[16];
	memcpy(uuid, b->sb.uuid, 16);

	/* Two copies on disk, copy 0 the newer, both valid. */
	char *p = sb_path(t_dir);
	ck_assert_int_eq(t_file_size(p), 2 * HC_SB_COPY_SIZE);
	struct stat st;
	ck_assert_int_eq(stat(p, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	free(p);
	struct hc_sb_info c0, c1;
	ck_assert_int_eq(read_copy(t_dir, 0, &c0), 0);
	ck_assert_int_eq(read_copy(t_dir, 1, &c1), 0);
	ck_assert_uint_gt(c0.generation, c1.generation);
	ck_assert_mem_eq(c0.uuid, uuid, 16);
	ck_assert_mem_eq(c1.uuid, uuid, 16);
	ck_assert_int_eq(b->copy, 0);
	hc_backing_close(b);

	/* Reopened: found, not formatted again, same identity. */
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_int_eq(b->formatted, 0);
	ck_assert_mem_eq(b->sb.uuid, uuid, 16);
	ck_assert_uint_eq(b->sb.generation, 1);
	ck_assert_int_eq(b->copy, 0);
	hc_backing_close(b);

	/* Another directory gets another uuid. */
	char *other = t_mkdtemp(t_dir, "other");
	ck_assert_int_eq(open_backing(other, 1, &b), 0);
	ck_assert_msg(memcmp(b->sb.uuid, uuid, 16) != 0, "two formats, one uuid");
	hc_backing_close(b);
	free(other);
}
END_TEST

START_TEST(test_backing_empty_no_format)
{
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 0, &b), -HC_ENOTHC);
	ck_assert_ptr_null(b);
	ck_assert_uint_gt(strlen(msg), 0);
	char *list = t_dir_listing(t_dir);
	ck_assert_str_eq(list, "");
	free(list);
}
END_TEST

START_TEST(test_backing_nonempty_refused)
{
	char *f = t_path(t_dir, "disk.img");
	char *sub = t_path(t_dir, "vm1");
	char data[10000];
	t_pattern(data, sizeof(data), 11, 0);
	t_write_file(f, data, sizeof(data));
	ck_assert_int_eq(mkdir(sub, 0700), 0);
	char *inner = t_path(sub, "swap");
	t_write_file(inner, data, 100);
	char *before = t_dir_listing(t_dir);
	char *before_sub = t_dir_listing(sub);

	for (int fmt = 0; fmt <= 1; fmt++) {
		struct hc_backing *b = NULL;
		ck_assert_int_eq(open_backing(t_dir, fmt, &b), -HC_ENOTHC);
		ck_assert_ptr_null(b);
		ck_assert_msg(strstr(msg, t_dir) != NULL, "message does not name the directory: %s",
			      msg);
		ck_assert_ptr_null(strchr(msg, '\n'));
	}
	/* Nothing created, nothing touched. */
	char *after = t_dir_listing(t_dir);
	char *after_sub = t_dir_listing(sub);
	ck_assert_str_eq(after, before);
	ck_assert_str_eq(after_sub, before_sub);
	size_t len;
	char *back = t_read_file(f, &len);
	ck_assert_uint_eq(len, sizeof(data));
	ck_assert_int_eq(t_memdiff(back, data, len), -1);
	free(back);
	free(before);
	free(after);
	free(before_sub);
	free(after_sub);
	free(inner);
	free(sub);
	free(f);
}
END_TEST

START_TEST(test_backing_bad_paths)
{
	struct hc_backing *b = NULL;
	char *missing = t_path(t_dir, "nope");
	ck_assert_int_eq(open_backing(missing, 1, &b), -ENOENT);
	ck_assert_uint_gt(strlen(msg), 0);
	ck_assert_int_eq(t_file_size(missing), -1);
	char *file = t_path(t_dir, "file");
	t_write_file(file, "x", 1);
	ck_assert_int_eq(open_backing(file, 1, &b), -ENOTDIR);
	ck_assert_ptr_null(b);
	free(missing);
	free(file);
}
END_TEST

/* The newest copy is bad: the older one is used and later overwritten. */
START_TEST(test_backing_recover_newest_bad)
{
	uint8_t uuid[16];
	make_backing(2, uuid);	/* copy 0: gen 3 (newest), copy 1: gen 2 */
	struct hc_sb_info c0, c1;
	ck_assert_int_eq(read_copy(t_dir, 0, &c0), 0);
	ck_assert_int_eq(read_copy(t_dir, 1, &c1), 0);
	ck_assert_uint_eq(c0.generation, 3);
	ck_assert_uint_eq(c1.generation, 2);

	corrupt_byte(t_dir, 40);	/* inside copy 0 */
	ck_assert_int_eq(read_copy(t_dir, 0, &c0), -HC_ECORRUPT);

	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_int_eq(b->formatted, 0);
	ck_assert_int_eq(b->copy, 1);
	ck_assert_uint_eq(b->sb.generation, 2);
	ck_assert_mem_eq(b->sb.uuid, uuid, 16);

	/* The next update goes over the bad copy and is newer than both. */
	ck_assert_int_eq(hc_backing_write_sb(b, HC_SB_F_CLEAN), 0);
	ck_assert_int_eq(b->copy, 0);
	ck_assert_int_eq(read_copy(t_dir, 0, &c0), 0);
	ck_assert_int_eq(read_copy(t_dir, 1, &c1), 0);
	ck_assert_uint_gt(c0.generation, c1.generation);
	ck_assert_uint_eq(c0.flags, HC_SB_F_CLEAN);
	ck_assert_mem_eq(c0.uuid, uuid, 16);
	hc_backing_close(b);
}
END_TEST

/* The older copy is bad: the newest is used, untouched. */
START_TEST(test_backing_recover_older_bad)
{
	uint8_t uuid[16];
	make_backing(2, uuid);
	corrupt_byte(t_dir, HC_SB_COPY_SIZE + 200);	/* reserved area of copy 1 */
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_int_eq(b->copy, 0);
	ck_assert_uint_eq(b->sb.generation, 3);
	ck_assert_mem_eq(b->sb.uuid, uuid, 16);
	hc_backing_close(b);
}
END_TEST

START_TEST(test_backing_both_bad_refused)
{
	uint8_t uuid[16];
	make_backing(1, uuid);
	corrupt_byte(t_dir, 0);				/* magic of copy 0 */
	corrupt_byte(t_dir, HC_SB_COPY_SIZE + 256);	/* checksum of copy 1 */
	char *p = sb_path(t_dir);
	size_t len0;
	char *before = t_read_file(p, &len0);
	char *list_before = t_dir_listing(t_dir);

	for (int fmt = 0; fmt <= 1; fmt++) {
		struct hc_backing *b = NULL;
		ck_assert_int_eq(open_backing(t_dir, fmt, &b), -HC_ECORRUPT);
		ck_assert_ptr_null(b);
		ck_assert_msg(strstr(msg, HC_SB_FILE) != NULL, "message: %s", msg);
	}
	size_t len1;
	char *after = t_read_file(p, &len1);
	ck_assert_uint_eq(len0, len1);
	ck_assert_int_eq(t_memdiff(before, after, len0), -1);
	char *list_after = t_dir_listing(t_dir);
	ck_assert_str_eq(list_after, list_before);
	free(before);
	free(after);
	free(list_before);
	free(list_after);
	free(p);
}
END_TEST

/* A short or empty hecache.sb (crash during format) has no valid copy. */
START_TEST(test_backing_truncated_refused)
{
	uint8_t uuid[16];
	make_backing(0, uuid);
	char *p = sb_path(t_dir);
	static const off_t sizes[] = { 0, 100, 263 };
	ck_assert_int_eq(truncate(p, HC_SB_COPY_SIZE + 100), 0);
	/* copy 0 intact, copy 1 cut: still opens */
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_mem_eq(b->sb.uuid, uuid, 16);
	hc_backing_close(b);
	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		ck_assert_int_eq(truncate(p, sizes[i]), 0);
		ck_assert_int_eq(open_backing(t_dir, 1, &b), -HC_ECORRUPT);
		ck_assert_int_eq(t_file_size(p), sizes[i]);
	}
	free(p);
}
END_TEST

START_TEST(test_backing_newer_major_refused)
{
	uint8_t uuid[16];
	make_backing(1, uuid);	/* copy 1 newest (gen 2) */
	struct hc_sb_info c;
	ck_assert_int_eq(read_copy(t_dir, 0, &c), 0);
	c.major = HC_SB_MAJOR + 1;
	c.generation = 9;
	write_copy_raw(t_dir, 0, &c);
	char *p = sb_path(t_dir);
	size_t l0, l1;
	char *before = t_read_file(p, &l0);
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), -HC_EVERSION);
	ck_assert_ptr_null(b);
	ck_assert_uint_gt(strlen(msg), 0);
	char *after = t_read_file(p, &l1);
	ck_assert_uint_eq(l0, l1);
	ck_assert_int_eq(t_memdiff(before, after, l0), -1);
	free(before);
	free(after);
	free(p);
}
END_TEST

START_TEST(test_backing_locked)
{
	struct hc_backing *a = NULL, *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &a), 0);	/* formats */
	char *p = sb_path(t_dir);
	size_t l0, l1;
	char *before = t_read_file(p, &l0);

	for (int i = 0; i < 3; i++) {
		ck_assert_int_eq(open_backing(t_dir, i & 1, &b), -HC_ELOCKED);
		ck_assert_ptr_null(b);
		ck_assert_uint_gt(strlen(msg), 0);
	}
	/* The refused opener wrote nothing; the holder still works. */
	char *after = t_read_file(p, &l1);
	ck_assert_uint_eq(l0, l1);
	ck_assert_int_eq(t_memdiff(before, after, l0), -1);
	ck_assert_int_eq(hc_backing_write_sb(a, 0), 0);

	/* Another process is refused too. */
	pid_t pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct hc_backing *c = NULL;
		char m[256];
		int r = hc_backing_open(t_dir, 1, &c, m, sizeof(m));
		_exit(r == -HC_ELOCKED ? 0 : 1);
	}
	int status;
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "a second process was not refused");

	hc_backing_close(a);
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	ck_assert_uint_eq(b->sb.generation, 2);
	hc_backing_close(b);
	free(before);
	free(after);
	free(p);
}
END_TEST

START_TEST(test_backing_write_sb_alternates)
{
	struct hc_backing *b = NULL;
	ck_assert_int_eq(open_backing(t_dir, 1, &b), 0);
	uint8_t uuid[16];
	memcpy(uuid, b->sb.uuid, 16);
	uint64_t created = b->sb.created;
	int copy = b->copy;
	uint64_t gen = b->sb.generation;
	uint32_t last_flags = 0;
	for (int i = 0; i < 8; i++) {
		struct hc_sb_info untouched;
		ck_assert_int_eq(read_copy(t_dir, copy, &untouched), 0);
		uint32_t flags = (i & 1) ? HC_SB_F_CLEAN : 0;
		time_t before = time(NULL);
		ck_assert_int_eq(hc_backing_write_sb(b, flags), 0);
		ck_assert_int_eq(b->copy, !copy);
		ck_assert_uint_gt(b->sb.generation, gen);
		ck_assert_uint_eq(b->sb.flags, flags);
		/* On disk: the new generation went to the other copy ... */
		struct hc_sb_info w, o;
		ck_assert_int_eq(read_copy(t_dir, !copy, &w), 0);
		ck_assert_uint_eq(w.generation, b->sb.generation);
		ck_assert_uint_eq(w.flags, flags);
		ck_assert_mem_eq(w.uuid, uuid, 16);
		ck_assert_uint_eq(w.created, created);
		ck_assert_uint_ge(w.mounted, (uint64_t)before);
		/* ... and the previous one is still there, unchanged. */
		ck_assert_int_eq(read_copy(t_dir, copy, &o), 0);
		assert_info_eq(&o, &untouched);
		ck_assert_uint_lt(o.generation, w.generation);
		copy = !copy;
		gen = b->sb.generation;
		last_flags = flags;
	}
	hc_backing_close(b);
	/* Reopening finds the last one. */
	ck_assert_int_eq(open_backing(t_dir, 0, &b), 0);
	ck_assert_uint_eq(b->sb.generation, gen);
	ck_assert_int_eq(b->copy, copy);
	ck_assert_uint_eq(b->sb.flags, last_flags);
	hc_backing_close(b);
	hc_backing_close(NULL);
}
END_TEST

static Suite *sb_suite(void)
{
	Suite *s = suite_create("sb");
	TCase *tc;

	tc = tcase_create("encoding");
	tcase_add_test(tc, test_sb_roundtrip);
	tcase_add_test(tc, test_sb_layout);
	tcase_add_test(tc, test_sb_corrupt_any_byte);
	tcase_add_test(tc, test_sb_bad_fields_valid_checksum);
	tcase_add_test(tc, test_sb_versions);
	suite_add_tcase(s, tc);

	tc = tcase_create("format");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_backing_format_empty);
	tcase_add_test(tc, test_backing_empty_no_format);
	tcase_add_test(tc, test_backing_nonempty_refused);
	tcase_add_test(tc, test_backing_bad_paths);
	suite_add_tcase(s, tc);

	tc = tcase_create("recovery");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_backing_recover_newest_bad);
	tcase_add_test(tc, test_backing_recover_older_bad);
	tcase_add_test(tc, test_backing_both_bad_refused);
	tcase_add_test(tc, test_backing_truncated_refused);
	tcase_add_test(tc, test_backing_newer_major_refused);
	suite_add_tcase(s, tc);

	tc = tcase_create("lock");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_backing_locked);
	suite_add_tcase(s, tc);

	tc = tcase_create("update");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_backing_write_sb_alternates);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(sb_suite());
}
