# -DSLABMQ_SANITIZE=address,undefined builds everything with those sanitizers; a finding
# aborts the test that hit it (halt_on_error / -fno-sanitize-recover).
if(SLABMQ_SANITIZE)
  add_compile_options(-fsanitize=${SLABMQ_SANITIZE} -fno-omit-frame-pointer
                      -fno-sanitize-recover=all)
  add_link_options(-fsanitize=${SLABMQ_SANITIZE})
endif()
