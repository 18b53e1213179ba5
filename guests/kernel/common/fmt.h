#ifndef KFMT_H
#define KFMT_H
#include <stdarg.h>
int kvsnprintf(char *buf, int size, const char *fmt, va_list ap);
int ksnprintf(char *buf, int size, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
#endif
