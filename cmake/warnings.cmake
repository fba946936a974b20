# Warnings for our own targets: slabmq_warnings(target)
function(slabmq_warnings target)
  target_compile_options(${target} PRIVATE
    -Wall -Wextra -Wformat=2 -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wvla
    -Wno-unused-parameter)
  if(SLABMQ_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()
