/* SPDX-License-Identifier: MIT */
/*
 * parse.c - strict parsing of option values, and the messages that reject them.
 *
 * strtoull() is not used: it skips leading spaces, accepts a sign (and
 * wraps "-1" to 2^64 - 1) and saturates silently. Here a value is exactly
 * digits plus an optional suffix, and anything else is rejected with a
 * reason the user can act on.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include "cli/cli.h"
#include "base/clock.h"

/* Leading decimal digits of *sp into *v; advances *sp. */
static int parse_digits(const char **sp, uint64_t *v, const char **why)
{
	const char *s = *sp;
	uint64_t x = 0;

	if (*s < '0' || *s > '9') {
		*why = *s ? "not a number" : "empty value";
		return -EINVAL;
	}
	for (; *s >= '0' && *s <= '9'; s++) {
		unsigned int d = (unsigned int)(*s - '0');

		if (x > (UINT64_MAX - d) / 10) {
			*why = "too large";
			return -ERANGE;
		}
		x = x * 10 + d;
	}
	*sp = s;
	*v = x;
	return 0;
}

int parse_u64(const char *s, unsigned int flags, uint64_t *out, const char **why)
{
	uint64_t v;
	int err;

	if (!s) {
		*why = "empty value";
		return -EINVAL;
	}
	err = parse_digits(&s, &v, why);
	if (err)
		return err;
	if (*s) {
		*why = "not a number (trailing characters)";
		return -EINVAL;
	}
	if (v == 0 && (flags & PARSE_NONZERO)) {
		*why = "must not be zero";
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int parse_size(const char *s, unsigned int flags, uint64_t *out, const char **why)
{
	uint64_t v;
	unsigned int shift = 0;
	int err;

	if (!s) {
		*why = "empty value";
		return -EINVAL;
	}
	err = parse_digits(&s, &v, why);
	if (err)
		return err;
	switch (*s) {
	case '\0':
		break;
	case 'k': case 'K':
		shift = 10;
		s++;
		break;
	case 'm': case 'M':
		shift = 20;
		s++;
		break;
	case 'g': case 'G':
		shift = 30;
		s++;
		break;
	default:
		*why = "not a size (expected digits with an optional K, M or G suffix)";
		return -EINVAL;
	}
	if (*s) {
		*why = "not a size (expected digits with an optional K, M or G suffix)";
		return -EINVAL;
	}
	if (shift && v > (UINT64_MAX >> shift)) {
		*why = "too large";
		return -ERANGE;
	}
	v <<= shift;
	if (v == 0 && (flags & PARSE_NONZERO)) {
		*why = "must not be zero";
		return -EINVAL;
	}
	*out = v;
	return 0;
}

int parse_duration(const char *s, unsigned int flags, uint64_t *out_ns,
		   const char **why)
{
	uint64_t whole, frac = 0, frac_scale = 1, unit = 1000000000ULL;
	int err;

	if (!s) {
		*why = "empty value";
		return -EINVAL;
	}
	err = parse_digits(&s, &whole, why);
	if (err)
		return err;
	if (*s == '.') {
		s++;
		if (*s < '0' || *s > '9') {
			*why = "not a duration (digits expected after '.')";
			return -EINVAL;
		}
		/* Nanosecond resolution at most; further digits are ignored. */
		for (; *s >= '0' && *s <= '9'; s++) {
			if (frac_scale < 1000000000ULL) {
				frac = frac * 10 + (uint64_t)(*s - '0');
				frac_scale *= 10;
			}
		}
	}
	if (strcmp(s, "ms") == 0)
		unit = 1000000ULL;
	else if (*s && strcmp(s, "s") != 0) {
		*why = "not a duration (expected seconds, e.g. 3, 0.5, 1.5s or 250ms)";
		return -EINVAL;
	}
	if (whole > UINT64_MAX / unit) {
		*why = "too large";
		return -ERANGE;
	}
	uint64_t ns = whole * unit + frac * (unit / frac_scale) +
		      (frac * (unit % frac_scale)) / frac_scale;
	if (ns < whole * unit) {
		*why = "too large";
		return -ERANGE;
	}
	if (ns == 0 && (flags & PARSE_NONZERO)) {
		*why = "must not be zero";
		return -EINVAL;
	}
	*out_ns = ns;
	return 0;
}

int cli_bad_value(const char *cmd, const char *opt, const char *val, const char *why)
{
	if (val)
		fprintf(stderr, "tandem %s: --%s: '%s': %s\n", cmd, opt, val, why);
	else
		fprintf(stderr, "tandem %s: --%s: %s\n", cmd, opt, why);
	return -1;
}

static int check_range(const char *cmd, const char *opt, const char *val,
		       uint64_t v, uint64_t min, uint64_t max)
{
	char why[96];

	if (v >= min && v <= max)
		return 0;
	snprintf(why, sizeof(why), "out of range (%llu..%llu)",
		 (unsigned long long)min, (unsigned long long)max);
	return cli_bad_value(cmd, opt, val, why);
}

/* Parse val with parser and check it lies in [min, max]. */
static int number_arg(int (*parser)(const char *, unsigned int, uint64_t *, const char **),
		      const char *cmd, const char *opt, const char *val,
		      uint64_t min, uint64_t max, uint64_t *out)
{
	const char *why;
	uint64_t v;

	if (parser(val, min ? PARSE_NONZERO : 0, &v, &why))
		return cli_bad_value(cmd, opt, val, why);
	if (check_range(cmd, opt, val, v, min, max))
		return -1;
	*out = v;
	return 0;
}

int cli_size_arg(const char *cmd, const char *opt, const char *val,
		 uint64_t min, uint64_t max, uint64_t *out)
{
	return number_arg(parse_size, cmd, opt, val, min, max, out);
}

int cli_u64_arg(const char *cmd, const char *opt, const char *val,
		uint64_t min, uint64_t max, uint64_t *out)
{
	return number_arg(parse_u64, cmd, opt, val, min, max, out);
}

int cli_duration_arg(const char *cmd, const char *opt, const char *val,
		     uint64_t *out_ns)
{
	const char *why;

	if (parse_duration(val, PARSE_NONZERO, out_ns, &why))
		return cli_bad_value(cmd, opt, val, why);
	return 0;
}

void cli_getopt_error(const char *cmd, int c, char **argv)
{
	const char *arg = argv[optind - 1];

	if (c == ':')
		fprintf(stderr, "tandem %s: option '%s' needs a value\n", cmd, arg);
	else if (optopt && arg && strncmp(arg, "--", 2) == 0 && strchr(arg, '='))
		fprintf(stderr, "tandem %s: option '%.*s' takes no value\n", cmd,
			(int)(strchr(arg, '=') - arg), arg);
	else if (optopt && optopt < 128 && arg && arg[0] == '-' && arg[1] != '-')
		fprintf(stderr, "tandem %s: unknown option '-%c'\n", cmd, optopt);
	else
		fprintf(stderr, "tandem %s: unknown or malformed option '%s'\n",
			cmd, arg);
	fprintf(stderr, "try 'tandem %s --help'\n", cmd);
}
