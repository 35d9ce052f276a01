# mod_runai_token — see README.md. Run ./configure first (make does it for you).

# `make run`, `make test`, `make test-asan`, `make leakcheck` and
# `make bench` install what is missing and configure first, then build in a
# sub-make that reads config.mk.
ifeq ($(filter run test test-asan leakcheck bench,$(MAKECMDGOALS)),)
-include config.mk
endif

MODULE   = mod_runai_token
SRCS     = mod_runai_token.c $(wildcard src/*.c)
HDRS     = $(wildcard src/*.h)
# The core that needs no httpd: unit tests and fuzzers link it alone.
CORE     = src/rt_util.c src/rt_error.c src/rt_request.c src/rt_keys.c src/rt_jwt.c \
           src/rt_record.c src/rt_form.c src/rt_verify.c src/rt_oidc.c \
           src/rt_credcache.c src/rt_authreq.c src/rt_crypto.c
WARN     = -Wall -Wextra -Werror
SO       = .libs/$(MODULE).so
UNIT_BIN = t/unit/bin/core_test
TOOLS    = t/bin/jwt_verify
CC      ?= cc

.PHONY: all install test check test-asan check-asan leakcheck check-leaks demo unit test-tools run bench \
        fuzz clean distclean format

all: $(SO)

config.mk: configure
	./configure $(CONFIGURE_FLAGS)

$(SO): config.mk $(SRCS) $(HDRS)
	$(APXS) -c -o $(MODULE).la $(addprefix -Wc$(comma),$(WARN)) \
	    $(filter -I% -D%,$(DEP_CFLAGS)) -Isrc $(SRCS) $(DEP_LIBS)

comma := ,

install: $(SO)
	$(APXS) -i -n runai_token $(MODULE).la
ifeq ($(ENABLE),1)
	install -m 644 conf/runai_token.load conf/runai_token.conf $(SYSCONFDIR)/mods-available/
	a2enmod runai_token
endif

$(UNIT_BIN): t/unit/core_test.c $(CORE) $(HDRS) config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(DEP_CFLAGS) -Isrc -o $@ t/unit/core_test.c $(CORE) \
	    $(DEP_LIBS) $(APR_LIBS)

unit: $(UNIT_BIN)

t/bin/jwt_verify: t/tools/jwt_verify.c config.mk
	@mkdir -p $(dir $@)
	$(CC) $(WARN) -g -O1 $(DEP_CFLAGS) -o $@ $< $(DEP_LIBS)

test-tools: $(TOOLS)

# The whole suite on a fresh machine: packages, npm modules of the
# conformance tests, configure, build, run.
test:
	scripts/deps.sh
	[ -d t/node/node_modules ] || [ ! -f t/node/package-lock.json ] || \
	    npm ci --prefix t/node --no-audit --no-fund
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check

# The suite alone: unit tests (t/unit/*.t) run inside the same Apache::Test
# harness as the end-to-end tests, so prove's summary covers everything.
check: all unit test-tools
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true
	APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -apxs $(APXS) $(TEST_FLAGS)

# The whole suite against the module built with ASan and UBSan (into
# build/asan; .libs is not touched), httpd with the sanitizer runtime
# preloaded, then the request mix of leakcheck under LeakSanitizer. Fails
# on a failed test or on any sanitizer report. See docs/sanitizers.md.
test-asan:
	scripts/deps.sh --sanitizers
	[ -d t/node/node_modules ] || [ ! -f t/node/package-lock.json ] || \
	    npm ci --prefix t/node --no-audit --no-fund
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check-asan

SAN_ENV = APXS='$(APXS)' DEP_CFLAGS='$(DEP_CFLAGS)' DEP_LIBS='$(DEP_LIBS)' \
          APR_LIBS='$(APR_LIBS)' SRCS='$(SRCS)' CORE='$(CORE)' WARN='$(WARN)' \
          TEST_FLAGS='$(TEST_FLAGS)'

check-asan: test-tools
	$(SAN_ENV) scripts/test-asan.sh

# httpd -X under valgrind memcheck through every route and error path
# (scripts/leakcheck.py); fails on a block lost by the module, libjwt or
# jansson. See docs/sanitizers.md.
leakcheck:
	scripts/deps.sh --sanitizers
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) check-leaks

check-leaks: all
	APXS='$(APXS)' scripts/leakcheck.sh

run:
	scripts/deps.sh --build-only
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) all
	$(MAKE) demo

demo: all
	MODULE=$(CURDIR)/$(SO) APXS=$(APXS) ./scripts/run-demo.sh

# wrk on loopback; figures are ratios to a ceiling measured in the same run.
# wrk against a local httpd; see README.md "Performance".
bench:
	scripts/deps.sh
	[ -f config.mk ] || ./configure $(CONFIGURE_FLAGS)
	$(MAKE) all
	/usr/bin/python3 bench/bench.py

# libFuzzer targets of the core, FUZZ_SECONDS (60) each; see fuzz/README.md.
fuzz:
	scripts/deps.sh --sanitizers
	fuzz/run.sh

format:
	clang-format -i mod_runai_token.c src/*.c src/*.h t/unit/*.c fuzz/*.c fuzz/*.h

clean:
	rm -rf .libs src/.libs *.la *.lo *.slo *.o src/*.la src/*.lo src/*.slo src/*.o \
	    t/unit/bin t/bin build
	-[ -f t/TEST.PL ] && APACHE_TEST_ULIMIT_SET=1 perl t/TEST.PL -clean >/dev/null 2>&1 || true

distclean: clean
	rm -f config.mk
