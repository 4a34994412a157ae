# mk/buffer.mk: buffer and 32-bit ARM targets, included by the top-level Makefile.
#
# Every go command of the project must run with
#   GOWORK=$(CURDIR)/build/go.work
# after `patch-ristretto` has run: it points the build at a patched copy of
# ristretto (Badger loses data on armv7/armv6 otherwise; see
# scripts/patch-ristretto.sh). The script is idempotent and takes ~50 ms when
# build/ is up to date, so it can be a prerequisite of every build and test.

BUFFER_GOWORK ?= $(CURDIR)/build/go.work

.PHONY: patch-ristretto
patch-ristretto: ## copy and patch ristretto into build/, write build/go.work
	@bash scripts/patch-ristretto.sh

.PHONY: test-arm
test-arm: patch-ristretto ## run the buffer's 32-bit data-loss guards under qemu (armv7, armv6)
	bash scripts/test-arm.sh

.PHONY: test-arm-unpatched
test-arm-unpatched: ## show that the same tests fail without the patch (expected to fail)
	-bash scripts/test-arm.sh --unpatched

.PHONY: bench-buffer
bench-buffer: patch-ristretto ## buffer benchmarks (Append: 100 durable appenders; Next+Ack)
	GOWORK=$(BUFFER_GOWORK) go test -run=NONE -bench=. -benchtime=3s ./buffer/
