# Installation and packaging: targets, header, CMake package config and pkg-config file.
# Included at the end of the top-level CMakeLists.txt.
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(CULOSS_INSTALL_CMAKEDIR "${CMAKE_INSTALL_LIBDIR}/cmake/culoss"
    CACHE STRING "Install directory of the culoss CMake package files (relative to the prefix)")
mark_as_advanced(CULOSS_INSTALL_CMAKEDIR)

install(TARGETS culoss culoss_static
  EXPORT culossTargets
  RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR}
  LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT Runtime
    NAMELINK_COMPONENT Development
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
    COMPONENT Development
  INCLUDES DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})

install(DIRECTORY ${PROJECT_SOURCE_DIR}/include/culoss
  DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}
  COMPONENT Development
  FILES_MATCHING PATTERN "*.h")

install(EXPORT culossTargets
  NAMESPACE culoss::
  FILE culossTargets.cmake
  DESTINATION ${CULOSS_INSTALL_CMAKEDIR}
  COMPONENT Development)

configure_package_config_file(
  ${CMAKE_CURRENT_LIST_DIR}/culossConfig.cmake.in
  ${PROJECT_BINARY_DIR}/culossConfig.cmake
  INSTALL_DESTINATION ${CULOSS_INSTALL_CMAKEDIR}
  PATH_VARS CMAKE_INSTALL_INCLUDEDIR)
write_basic_package_version_file(
  ${PROJECT_BINARY_DIR}/culossConfigVersion.cmake
  VERSION ${PROJECT_VERSION}
  COMPATIBILITY SameMajorVersion)
install(FILES
    ${PROJECT_BINARY_DIR}/culossConfig.cmake
    ${PROJECT_BINARY_DIR}/culossConfigVersion.cmake
  DESTINATION ${CULOSS_INSTALL_CMAKEDIR}
  COMPONENT Development)

# pkg-config. The file is relocatable: ${prefix} is found from the .pc file's own directory
# (${pcfiledir}), so `cmake --install --prefix <dir>` and DESTDIR both give a working file.
if(IS_ABSOLUTE "${CMAKE_INSTALL_LIBDIR}")
  set(CULOSS_PC_PREFIX "${CMAKE_INSTALL_PREFIX}")
  set(CULOSS_PC_LIBDIR "${CMAKE_INSTALL_LIBDIR}")
else()
  file(RELATIVE_PATH _culoss_pc_up "/_root/${CMAKE_INSTALL_LIBDIR}/pkgconfig" "/_root")
  string(REGEX REPLACE "/$" "" _culoss_pc_up "${_culoss_pc_up}")
  set(CULOSS_PC_PREFIX "\${pcfiledir}/${_culoss_pc_up}")
  set(CULOSS_PC_LIBDIR "\${exec_prefix}/${CMAKE_INSTALL_LIBDIR}")
endif()
if(IS_ABSOLUTE "${CMAKE_INSTALL_INCLUDEDIR}")
  set(CULOSS_PC_INCLUDEDIR "${CMAKE_INSTALL_INCLUDEDIR}")
else()
  set(CULOSS_PC_INCLUDEDIR "\${prefix}/${CMAKE_INSTALL_INCLUDEDIR}")
endif()
# <dlpack/dlpack.h> is needed by the header; add its directory unless it is a system one.
set(CULOSS_PC_CFLAGS_EXTRA "")
if(DLPACK_INCLUDE_DIR AND NOT DLPACK_INCLUDE_DIR IN_LIST CMAKE_C_IMPLICIT_INCLUDE_DIRECTORIES)
  set(CULOSS_PC_CFLAGS_EXTRA " -I${DLPACK_INCLUDE_DIR}")
endif()
# Libs.private is what libculoss.a users need (pkg-config --static): the C++ runtime, the threads
# library and, for a CUDA build, the static CUDA runtime (libculoss.so carries it inside).
set(CULOSS_PC_LIBS_PRIVATE "-lstdc++ -lm -lpthread")
if(CULOSS_HAVE_CUDA)
  string(PREPEND CULOSS_PC_LIBS_PRIVATE
         "-L${CUDAToolkit_LIBRARY_DIR} -lcudart_static -ldl -lrt ")
endif()
configure_file(${CMAKE_CURRENT_LIST_DIR}/culoss.pc.in ${PROJECT_BINARY_DIR}/culoss.pc @ONLY)
install(FILES ${PROJECT_BINARY_DIR}/culoss.pc
  DESTINATION ${CMAKE_INSTALL_LIBDIR}/pkgconfig
  COMPONENT Development)
