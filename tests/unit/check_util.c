// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Unit tests of util.c and hc_strerror() (log.c): size parsing (binary
 * multiples, "B"/"iB" suffixes, refusal of empty, negative, junk and
 * overflowing input), size formatting checked by parsing the text back,
 * the monotonic clock bracketed by clock_gettime(CLOCK_MONOTONIC), and the
 * error texts of the HC_E* codes and of plain errno values.
 */
#include "config.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "hecache/errors.h"
#include "t_helpers.h"
#include "util.h"

struct size_case {
	const char *text;
	uint64_t value;
};

static const struct size_case valid_sizes[] = {
	{ "0", 0 },
	{ "1", 1 },
	{ "4096", 4096 },
	{ "64K", 64ull << 10 },
	{ "64k", 64ull << 10 },
	{ "256M", 256ull << 20 },
	{ "1G", 1ull << 30 },
	{ "1T", 1ull << 40 },
	{ "3g", 3ull << 30 },
	{ "1GiB", 1ull << 30 },
	{ "1GB", 1ull << 30 },
	{ "2KiB", 2ull << 10 },
	{ "2kib", 2ull << 10 },
	{ "512MB", 512ull << 20 },
	{ "8B", 8 },
	{ "16777215T", 16777215ull << 40 },		/* largest T that fits */
	{ "18446744073709551615", UINT64_MAX },	/* largest plain number */
	{ "17179869183G", 17179869183ull << 30 },	/* (2^34 - 1) G */
};

static const char *const invalid_sizes[] = {
	"", "-1", "-0", "+1", " 1", "1 ", "12X", "1G junk", "1Gjunk", "1G ", "K", "G1",
	"1KK", "1Gi", "1iB", "1BiB", "1GBB", "1GiBB", "0x10", "1.5G", "1e3",
	"99999999999T", "16777216T",		/* 2^64 and beyond after the shift */
	"17179869184G",				/* 2^64 */
	"18446744073709551616",			/* 2^64: strtoull overflow */
	"99999999999999999999999999",
};

START_TEST(test_parse_size_valid)
{
	for (size_t i = 0; i < sizeof(valid_sizes) / sizeof(valid_sizes[0]); i++) {
		uint64_t v = 12345;
		int r = hc_parse_size(valid_sizes[i].text, &v);
		ck_assert_msg(r == 0, "hc_parse_size(\"%s\") = %d, want 0", valid_sizes[i].text, r);
		ck_assert_msg(v == valid_sizes[i].value, "hc_parse_size(\"%s\") gave %llu, want %llu",
			      valid_sizes[i].text, (unsigned long long)v,
			      (unsigned long long)valid_sizes[i].value);
	}
}
END_TEST

START_TEST(test_parse_size_invalid)
{
	for (size_t i = 0; i < sizeof(invalid_sizes) / sizeof(invalid_sizes[0]); i++) {
		uint64_t v = 777;
		int r = hc_parse_size(invalid_sizes[i], &v);
		ck_assert_msg(r == -EINVAL, "hc_parse_size(\"%s\") = %d (value %llu), want -EINVAL",
			      invalid_sizes[i], r, (unsigned long long)v);
	}
	uint64_t v = 0;
	ck_assert_int_eq(hc_parse_size(NULL, &v), -EINVAL);
}
END_TEST

/* Every multiplier, as K/M/G/T, KB.., KiB.., against a shifted number. */
START_TEST(test_parse_size_all_suffixes)
{
	static const char units[] = "KMGT";
	static const char *const tails[] = { "", "B", "iB", "b", "ib", "IB" };
	for (unsigned u = 0; u < 4; u++) {
		for (unsigned t = 0; t < sizeof(tails) / sizeof(tails[0]); t++) {
			for (uint64_t n = 1; n < 1000; n = n * 7 + 3) {
				char text[64];
				snprintf(text, sizeof(text), "%llu%c%s", (unsigned long long)n,
					 units[u], tails[t]);
				uint64_t v = 0;
				ck_assert_msg(hc_parse_size(text, &v) == 0, "\"%s\" refused", text);
				ck_assert_msg(v == n << (10 * (u + 1)), "\"%s\" gave %llu", text,
					      (unsigned long long)v);
			}
		}
	}
}
END_TEST

static const char *const fmt_units[] = { "B", "KiB", "MiB", "GiB", "TiB" };

/* Parses "<number> <unit>" and checks it names bytes to within rounding. */
static void check_formatted(uint64_t bytes)
{
	char buf[64];
	memset(buf, 'x', sizeof(buf));
	char *r = hc_format_size(bytes, buf, sizeof(buf));
	ck_assert_ptr_eq(r, buf);
	ck_assert_msg(memchr(buf, 0, sizeof(buf)) != NULL, "not terminated");
	double num;
	char unit[16];
	int n = 0;
	ck_assert_msg(sscanf(buf, "%lf %15s%n", &num, unit, &n) == 2, "\"%s\" unparsable", buf);
	ck_assert_msg(buf[n] == 0, "\"%s\": junk after the unit", buf);
	int u = -1;
	for (int k = 0; k < 5; k++)
		if (!strcmp(unit, fmt_units[k]))
			u = k;
	ck_assert_msg(u >= 0, "\"%s\": unknown unit", buf);
	double scale = (double)(1ull << (10 * u));
	if (u == 0) {
		/* Bytes are printed exactly. */
		char want[32];
		snprintf(want, sizeof(want), "%llu B", (unsigned long long)bytes);
		ck_assert_str_eq(buf, want);
		ck_assert_uint_lt(bytes, 1024);
		return;
	}
	/* The largest unit the value reaches (up to TiB), one decimal. */
	ck_assert_msg((double)bytes >= scale, "\"%s\" for %llu: unit too large", buf,
		      (unsigned long long)bytes);
	if (u < 4)
		ck_assert_msg((double)bytes < scale * 1024, "\"%s\" for %llu: unit too small",
			      buf, (unsigned long long)bytes);
	double err = num * scale - (double)bytes;
	if (err < 0)
		err = -err;
	ck_assert_msg(err <= 0.05 * scale + 1e-9 * (double)bytes,
		      "\"%s\" for %llu bytes: off by %.0f", buf, (unsigned long long)bytes, err);
}

START_TEST(test_format_size)
{
	static const uint64_t values[] = {
		0, 1, 512, 1023, 1024, 1025, 1536, 4096, 65536, 1048575, 1048576,
		256ull << 20, (1ull << 30) - 1, 1ull << 30, 3ull << 30, 1ull << 40,
		1536ull << 30, 2048ull << 40, UINT64_MAX,
	};
	for (size_t i = 0; i < sizeof(values) / sizeof(values[0]); i++)
		check_formatted(values[i]);
	uint64_t s = 42;
	for (int i = 0; i < 2000; i++)
		check_formatted(t_rand(&s) >> t_rand_below(&s, 64));
}
END_TEST

/* A short buffer gets a terminated prefix and nothing past its end. */
START_TEST(test_format_size_short_buffer)
{
	char full[64], buf[16];
	hc_format_size(256ull << 20, full, sizeof(full));
	for (size_t len = 1; len <= 8; len++) {
		memset(buf, '#', sizeof(buf));
		ck_assert_ptr_eq(hc_format_size(256ull << 20, buf, len), buf);
		ck_assert_uint_eq(strlen(buf), HC_MIN(len - 1, strlen(full)));
		ck_assert_int_eq(strncmp(buf, full, len - 1), 0);
		for (size_t k = len; k < sizeof(buf); k++)
			ck_assert_msg(buf[k] == '#', "byte %zu past a %zu-byte buffer written", k, len);
	}
}
END_TEST

static uint64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

START_TEST(test_now_ns_monotonic)
{
	uint64_t prev = hc_now_ns();
	for (int i = 0; i < 100000; i++) {
		uint64_t t = hc_now_ns();
		ck_assert_msg(t >= prev, "went back: %llu then %llu", (unsigned long long)prev,
			      (unsigned long long)t);
		prev = t;
	}
	/* It is CLOCK_MONOTONIC in nanoseconds: bracketed by the real thing. */
	for (int i = 0; i < 1000; i++) {
		uint64_t a = mono_ns();
		uint64_t t = hc_now_ns();
		uint64_t b = mono_ns();
		ck_assert_uint_le(a, t);
		ck_assert_uint_le(t, b);
	}
	/* And it advances at least as long as we sleep. */
	uint64_t t0 = hc_now_ns();
	struct timespec d = { 0, 20 * 1000 * 1000 };
	while (nanosleep(&d, &d) < 0 && errno == EINTR)
		;
	ck_assert_uint_ge(hc_now_ns() - t0, 20ull * 1000 * 1000);
}
END_TEST

START_TEST(test_strerror_hc_codes)
{
	static const int codes[] = { HC_ECORRUPT, HC_EVERSION, HC_ENOTHC, HC_ELOCKED };
	const size_t n = sizeof(codes) / sizeof(codes[0]);
	ck_assert_int_eq(HC_ERROR_LAST, HC_ELOCKED);
	char *text[sizeof(codes) / sizeof(codes[0])];
	for (size_t i = 0; i < n; i++) {
		ck_assert_int_gt(codes[i], HC_ERROR_BASE);
		const char *pos = hc_strerror(codes[i]);
		ck_assert_ptr_nonnull(pos);
		ck_assert_uint_gt(strlen(pos), 5);
		text[i] = strdup(pos);
		const char *neg = hc_strerror(-codes[i]);
		ck_assert_ptr_nonnull(neg);
		ck_assert_str_eq(neg, text[i]);
		/* Not libc's "Unknown error NNNN". */
		char unknown[64];
		snprintf(unknown, sizeof(unknown), "%s", strerror(codes[i]));
		ck_assert_str_ne(text[i], unknown);
		ck_assert_ptr_null(strstr(text[i], "Unknown error"));
	}
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			ck_assert_str_ne(text[i], text[j]);
	/* Say what they mean. */
	ck_assert_ptr_nonnull(strstr(text[0], "corrupt"));
	ck_assert_ptr_nonnull(strstr(text[1], "newer"));
	ck_assert_ptr_nonnull(strstr(text[2], "hecache"));
	ck_assert_ptr_nonnull(strstr(text[3], "use"));
	for (size_t i = 0; i < n; i++)
		free(text[i]);
}
END_TEST

START_TEST(test_strerror_errno)
{
	static const int errs[] = { EPERM, ENOENT, EIO, EBADF, ENOMEM, EINVAL, ENOSPC,
				    EFBIG, EXDEV, ENOTEMPTY, EEXIST, ENXIO, ERANGE };
	for (size_t i = 0; i < sizeof(errs) / sizeof(errs[0]); i++) {
		char want[256];
		snprintf(want, sizeof(want), "%s", strerror(errs[i]));
		ck_assert_str_eq(hc_strerror(errs[i]), want);
		ck_assert_str_eq(hc_strerror(-errs[i]), want);
	}
	/* Values in neither range still get a text. */
	static const int odd[] = { 0, 1999, 2000, HC_ERROR_LAST + 1, 99999, -99999 };
	for (size_t i = 0; i < sizeof(odd) / sizeof(odd[0]); i++) {
		const char *t = hc_strerror(odd[i]);
		ck_assert_ptr_nonnull(t);
		ck_assert_uint_gt(strlen(t), 0);
	}
}
END_TEST

/* hc_pwrite_all then hc_pread_full: the bytes back, zeros past the end. */
START_TEST(test_whole_io)
{
	char *path = t_path(t_dir, "f");
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	char w[10000], r[12000];
	uint64_t seed = 3;
	t_fill_random(w, sizeof(w), &seed);
	ck_assert_int_eq(hc_pwrite_all(fd, w, sizeof(w), 100), 0);
	memset(r, 0xa5, sizeof(r));
	ck_assert_int_eq(hc_pread_full(fd, r, sizeof(r), 100), (ssize_t)sizeof(w));
	ck_assert_int_eq(t_memdiff(r, w, sizeof(w)), -1);
	ck_assert_int_eq(t_memchk(r + sizeof(w), 0, sizeof(r) - sizeof(w)), -1);
	ck_assert_int_eq(hc_pread_full(fd, r, 4096, 1 << 20), 0);
	ck_assert_int_eq(t_memchk(r, 0, 4096), -1);
	ck_assert_int_eq(hc_pread_full(-1, r, 1, 0), -EBADF);
	ck_assert_int_eq(hc_pwrite_all(-1, w, 1, 0), -EBADF);
	close(fd);
	free(path);
}
END_TEST

static Suite *util_suite(void)
{
	Suite *s = suite_create("util");
	TCase *tc;

	tc = tcase_create("parse_size");
	tcase_add_test(tc, test_parse_size_valid);
	tcase_add_test(tc, test_parse_size_invalid);
	tcase_add_test(tc, test_parse_size_all_suffixes);
	suite_add_tcase(s, tc);

	tc = tcase_create("format_size");
	tcase_add_test(tc, test_format_size);
	tcase_add_test(tc, test_format_size_short_buffer);
	suite_add_tcase(s, tc);

	tc = tcase_create("clock");
	tcase_add_test(tc, test_now_ns_monotonic);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(s, tc);

	tc = tcase_create("strerror");
	tcase_add_test(tc, test_strerror_hc_codes);
	tcase_add_test(tc, test_strerror_errno);
	suite_add_tcase(s, tc);

	tc = tcase_create("whole_io");
	t_tcase_fixtures(tc, 30);
	tcase_add_test(tc, test_whole_io);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return t_run_suite(util_suite());
}
