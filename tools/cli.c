// SPDX-License-Identifier: GPL-2.0-or-later
/*
 * Command-line helpers of the small tools (cli.h): die, die_usage and the
 * option-argument parsers, with the message formats and exit statuses the
 * tools' man pages and tests rely on.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "cli.h"

static const char *prog = "hecache";

void hc_cli_init(const char *name)
{
	prog = name;
}

const char *hc_cli_name(void)
{
	return prog;
}

/* "NAME: <message>" on stderr, without a newline. */
static void say(const char *fmt, va_list ap) __attribute__((format(printf, 1, 0)));
static void say(const char *fmt, va_list ap)
{
	fprintf(stderr, "%s: ", prog);
	vfprintf(stderr, fmt, ap);
}

void hc_cli_die_usage(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fprintf(stderr, " (try '%s --help')\n", prog);
	exit(2);
}

void hc_cli_die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	say(fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(1);
}

uint64_t hc_cli_parse_u64(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-')
		hc_cli_die_usage("%s: not a non-negative integer: '%s'", opt, s);
	return v;
}

double hc_cli_parse_double(const char *opt, const char *s)
{
	char *end;
	errno = 0;
	double v = strtod(s, &end);
	if (errno || end == s || *end || !(v == v))
		hc_cli_die_usage("%s: not a number: '%s'", opt, s);
	return v;
}
