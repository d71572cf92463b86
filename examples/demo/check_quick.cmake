# ctest driver for culoss-demo (cmake -DDEMO=... -DOUT=... -DEXPECT_PNG=ON|OFF -P this file):
# the --quick run must exit 0, print both tables, and write the PNGs when libpng was found;
# bad values must be refused with a message and exit status 2; --device cuda must either work
# (a GPU is present) or fail with a message that says why.
file(REMOVE_RECURSE "${OUT}")

execute_process(COMMAND "${DEMO}" --quick --out "${OUT}"
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
message("${out}")
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "culoss-demo --quick exited with ${rc}: ${err}")
endif()
foreach(expected "held-out results" "Lovasz-Softmax" "marginal CE" "Dice \\+ CE" "precision")
  if(NOT out MATCHES "${expected}")
    message(FATAL_ERROR "culoss-demo --quick printed no '${expected}'")
  endif()
endforeach()
if(out MATCHES "[ (|]-?(nan|inf)[ ,)\n]")
  message(FATAL_ERROR "culoss-demo --quick printed a non-finite number")
endif()
if(EXPECT_PNG)
  foreach(png predictions.png curves.png)
    if(NOT EXISTS "${OUT}/${png}")
      message(FATAL_ERROR "culoss-demo --quick wrote no ${OUT}/${png}")
    endif()
    file(READ "${OUT}/${png}" magic LIMIT 8 HEX)
    if(NOT magic STREQUAL "89504e470d0a1a0a")
      message(FATAL_ERROR "${OUT}/${png} is not a PNG file")
    endif()
  endforeach()
else()
  if(NOT out MATCHES "built without libpng")
    message(FATAL_ERROR "culoss-demo without libpng did not say that no PNG is written")
  endif()
endif()

# Bad values: a message naming the option, exit status 2.
foreach(bad "--steps;0" "--steps;12x" "--lr;abc" "--lr;-1" "--missing;1.5" "--width;7"
            "--size;8" "--losses;dice,nope" "--device;tpu" "--missing-class;square" "--bogus"
            "--out")
  execute_process(COMMAND "${DEMO}" ${bad} RESULT_VARIABLE rc OUTPUT_VARIABLE out
    ERROR_VARIABLE err)
  list(GET bad 0 opt)
  if(NOT rc EQUAL 2 OR NOT err MATCHES "culoss-demo: .*${opt}")
    message(FATAL_ERROR "culoss-demo ${bad}: expected exit status 2 and a message naming ${opt}; got ${rc}: ${err}")
  endif()
endforeach()
execute_process(COMMAND "${DEMO}" --help RESULT_VARIABLE rc OUTPUT_VARIABLE out)
if(NOT rc EQUAL 0 OR NOT out MATCHES "--missing-class")
  message(FATAL_ERROR "culoss-demo --help: exit ${rc}")
endif()

# --device cuda: works with a GPU; otherwise exit 1 with the reason.
execute_process(COMMAND "${DEMO}" --quick --device cuda --losses dice+ce,marginal
  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
if(rc EQUAL 0)
  if(NOT out MATCHES "CUDA: culoss on" OR NOT out MATCHES "held-out results")
    message(FATAL_ERROR "culoss-demo --device cuda exited 0 without its table")
  endif()
  message("--device cuda ran on the GPU")
elseif(rc EQUAL 1 AND err MATCHES "--device cuda: (this culoss-demo was built without CUDA|no usable CUDA device)")
  message("--device cuda refused as expected here: ${err}")
else()
  message(FATAL_ERROR "culoss-demo --device cuda: exit ${rc}: ${err}")
endif()
