# Fails the build if an ISA microkernel object exports anything but its table getter.
#
# The per-ISA units are compiled with different instruction-set flags. Any other symbol with
# external linkage (an inline function or template instance from a header, a weak symbol) could
# be merged by the linker across units, and AVX-512 code could then run on the baseline path.
# Usage: cmake -DNM=<nm> "-DOBJECTS=a.o|b.o" -P check_isa_symbols.cmake
string(REPLACE "|" ";" objects "${OBJECTS}")
set(seen "")
foreach(obj IN LISTS objects)
  execute_process(COMMAND "${NM}" -g --defined-only "${obj}" OUTPUT_VARIABLE out RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "nm failed on ${obj}")
  endif()
  string(REPLACE "\n" ";" lines "${out}")
  foreach(line IN LISTS lines)
    if(line STREQUAL "")
      continue()
    endif()
    string(REGEX REPLACE "^[0-9a-fA-F]* *[A-Za-z] +" "" symbol "${line}")
    if(NOT symbol MATCHES "kernel_table_")
      message(FATAL_ERROR "ISA unit ${obj} exports '${symbol}': only its kernel_table_* getter may have external linkage")
    endif()
    if(symbol IN_LIST seen)
      message(FATAL_ERROR "symbol '${symbol}' is defined by more than one ISA unit")
    endif()
    list(APPEND seen "${symbol}")
  endforeach()
endforeach()
list(LENGTH seen count)
message(STATUS "ISA units export only their table getters (${count} symbols)")
