# Helpers that every tests/ CMakeLists uses, so a test is one line.

# rs_unit_test(NAME SOURCE LIBS...): a C unit test built against the given libraries.
function(rs_unit_test name src)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests/unit)
  target_link_libraries(${name} PRIVATE ${ARGN})
  add_test(NAME ${name} COMMAND ${name})
  set_tests_properties(${name} PROPERTIES LABELS unit SKIP_RETURN_CODE 77)
endfunction()

# rs_integration_test(NAME SCRIPT): a shell test that runs the real binaries. It gets the build
# directory in RS_BUILD and the source tree in RS_SRC; exit 77 means skipped.
function(rs_integration_test name script)
  add_test(NAME ${name} COMMAND bash ${script})
  set_tests_properties(${name} PROPERTIES LABELS integration SKIP_RETURN_CODE 77
    ENVIRONMENT "RS_BUILD=${CMAKE_BINARY_DIR};RS_SRC=${CMAKE_SOURCE_DIR}")
endfunction()

# rs_fuzz_target(NAME SOURCE CORPUS_DIR LIBS...): a libFuzzer target, run over its seed corpus
# and then for a bounded time in the suite. Only with RS_FUZZ (clang); without it the same source
# is built as a replayer that runs the corpus, so the corpus is exercised by every build.
function(rs_fuzz_target name src corpus)
  add_executable(${name} ${src})
  target_include_directories(${name} PRIVATE ${CMAKE_SOURCE_DIR} ${CMAKE_SOURCE_DIR}/tests/fuzz)
  target_link_libraries(${name} PRIVATE ${ARGN})
  if(RS_FUZZ)
    target_compile_options(${name} PRIVATE -fsanitize=fuzzer)
    target_link_options(${name} PRIVATE -fsanitize=fuzzer)
    # New inputs go to a scratch corpus in the build tree; the seed corpus is only read.
    set(scratch ${CMAKE_BINARY_DIR}/fuzz-corpus/${name})
    file(MAKE_DIRECTORY ${scratch})
    add_test(NAME ${name} COMMAND ${name} -max_total_time=20 -timeout=5 -rss_limit_mb=2048
      -artifact_prefix=${CMAKE_BINARY_DIR}/ ${scratch} ${corpus})
  else()
    target_sources(${name} PRIVATE ${CMAKE_SOURCE_DIR}/tests/fuzz/replay_main.c)
    add_test(NAME ${name} COMMAND ${name} ${corpus})
  endif()
  set_tests_properties(${name} PROPERTIES LABELS fuzz)
endfunction()
