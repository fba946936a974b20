# -DSLABMQ_SANITIZE=address,undefined builds everything with those sanitizers; a finding
# aborts the test that hit it (halt_on_error / -fno-sanitize-recover).
if(SLABMQ_SANITIZE)
  add_compile_options(-fsanitize=${SLABMQ_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SLABMQ_SANITIZE})
endif()

# -DSLABMQ_FUZZ=ON (clang only): everything is built with libFuzzer's coverage instrumentation
# and ASan+UBSan, and tests/fuzz adds one libFuzzer binary per target (scripts/fuzz.sh).
if(SLABMQ_FUZZ)
  if(NOT CMAKE_C_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "SLABMQ_FUZZ needs clang: configure with CC=clang (scripts/fuzz.sh does)")
  endif()
  if(NOT SLABMQ_BUILD_TESTS)
    message(FATAL_ERROR "SLABMQ_FUZZ needs SLABMQ_BUILD_TESTS=ON: the targets are in tests/fuzz")
  endif()
  add_compile_options(-fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
                      -fno-sanitize-recover=all -g)
  add_link_options(-fsanitize=address,undefined)
endif()
