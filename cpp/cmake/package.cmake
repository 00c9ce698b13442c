# The C ABI library smic::c and the installable CMake package (smicConfig.cmake), included at
# the end of cpp/CMakeLists.txt. Kept apart from the core's own target definitions.
#
#   SMIC_BUILD_C_API  build libsmic_c (default: ON; the wheel carries it too)
#   SMIC_INSTALL_CPP  install headers, libraries and the CMake package (default: ON when cpp/
#                     or the repository root is the top-level project, the wheel build included)
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

option(SMIC_BUILD_C_API "Build the shared library smic_c (smic/smic.h)" ON)
if(NOT DEFINED SMIC_INSTALL_CPP)
  # A project that add_subdirectory()s cpp/ gets the targets, not an install of smic into its
  # own prefix; the repository root defines SMIC_INSTALL_CPP itself.
  if(CMAKE_SOURCE_DIR STREQUAL CMAKE_CURRENT_SOURCE_DIR)
    set(_smic_install_default ON)
  else()
    set(_smic_install_default OFF)
  endif()
  option(SMIC_INSTALL_CPP "Install the smic C/C++ package (headers, libraries, CMake config)"
         ${_smic_install_default})
endif()

# One version for the C header, the library and the package: the macros of smic/smic.h.
file(STRINGS ${CMAKE_CURRENT_SOURCE_DIR}/include/smic/smic.h _smic_version_lines
     REGEX "^#define SMIC_VERSION_(MAJOR|MINOR|PATCH) [0-9]+$")
foreach(_line IN LISTS _smic_version_lines)
  string(REGEX REPLACE "^#define SMIC_VERSION_([A-Z]+) ([0-9]+)$" "\\1;\\2" _pair "${_line}")
  list(GET _pair 0 _part)
  list(GET _pair 1 _value)
  set(_smic_version_${_part} ${_value})
endforeach()
set(SMIC_VERSION "${_smic_version_MAJOR}.${_smic_version_MINOR}.${_smic_version_PATCH}")
# The wheel's version is read from the same macros (pyproject.toml, regex provider): a
# mismatch means that reading broke, and a wheel would carry two versions.
if(DEFINED SKBUILD_PROJECT_VERSION AND NOT SKBUILD_PROJECT_VERSION VERSION_EQUAL SMIC_VERSION)
  message(FATAL_ERROR "wheel version ${SKBUILD_PROJECT_VERSION} != smic.h's ${SMIC_VERSION}")
endif()

# Headers come from the source tree when building, from <prefix>/include once installed.
set_property(TARGET smic_core PROPERTY INTERFACE_INCLUDE_DIRECTORIES
             $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
             $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
set_target_properties(smic_core PROPERTIES EXPORT_NAME core)

if(SMIC_BUILD_C_API)
  add_library(smic_c SHARED src/c_api/c_api.cpp)
  add_library(smic::c ALIAS smic_c)
  target_include_directories(smic_c PUBLIC
    $<BUILD_INTERFACE:${CMAKE_CURRENT_SOURCE_DIR}/include>
    $<INSTALL_INTERFACE:${CMAKE_INSTALL_INCLUDEDIR}>)
  # The static core goes inside (it is compiled PIC); nothing of it reaches the consumer.
  target_link_libraries(smic_c PRIVATE smic_core)
  target_include_directories(smic_c PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/src)
  target_compile_definitions(smic_c PRIVATE SMIC_C_BUILDING)
  set_target_properties(smic_c PROPERTIES
    EXPORT_NAME c
    OUTPUT_NAME smic_c
    CXX_VISIBILITY_PRESET hidden
    VISIBILITY_INLINES_HIDDEN ON)
  # A wheel cannot hold symbolic links (libsmic_c.so -> .so.0.1 -> .so.0.1.0 would be three
  # copies), so inside it the library is one file, libsmic_c.so, and the package is versioned
  # as a whole.
  if(NOT DEFINED SKBUILD)
    set_target_properties(smic_c PROPERTIES
      VERSION ${SMIC_VERSION} SOVERSION ${_smic_version_MAJOR}.${_smic_version_MINOR})
  endif()
  if(CMAKE_CXX_COMPILER_ID MATCHES "GNU|Clang")
    target_compile_options(smic_c PRIVATE -Wall -Wextra)
  endif()
  # Export only smic_*: the version script hides the core and the C++ runtime's template
  # instances too (visibility alone would not reach the static library's objects).
  if(CMAKE_SYSTEM_NAME STREQUAL "Linux" OR CMAKE_SYSTEM_NAME MATCHES "BSD")
    set(_smic_map ${CMAKE_CURRENT_SOURCE_DIR}/cmake/smic_c.map)
    target_link_options(smic_c PRIVATE "LINKER:--version-script=${_smic_map}"
                        "LINKER:--no-undefined")
    set_property(TARGET smic_c APPEND PROPERTY LINK_DEPENDS ${_smic_map})
  endif()
endif()

if(SMIC_INSTALL_CPP)
  set(_smic_targets smic_core)
  if(TARGET smic_c)
    list(APPEND _smic_targets smic_c)
  endif()
  set(SMIC_WITH_OPENMP ${OpenMP_CXX_FOUND})
  if(NOT SMIC_WITH_OPENMP)
    set(SMIC_WITH_OPENMP OFF)
  endif()
  set(_smic_cmake_dir ${CMAKE_INSTALL_LIBDIR}/cmake/smic)
  install(TARGETS ${_smic_targets} EXPORT smicTargets
          ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR}
          LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR}
          RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  install(DIRECTORY include/smic DESTINATION ${CMAKE_INSTALL_INCLUDEDIR})
  install(EXPORT smicTargets NAMESPACE smic:: DESTINATION ${_smic_cmake_dir})
  configure_package_config_file(cmake/smicConfig.cmake.in
    ${CMAKE_CURRENT_BINARY_DIR}/smicConfig.cmake INSTALL_DESTINATION ${_smic_cmake_dir})
  # 0.x: a minor release may change the ABI, so only the same MAJOR.MINOR is compatible.
  write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/smicConfigVersion.cmake
    VERSION ${SMIC_VERSION} COMPATIBILITY SameMinorVersion)
  install(FILES ${CMAKE_CURRENT_BINARY_DIR}/smicConfig.cmake
                ${CMAKE_CURRENT_BINARY_DIR}/smicConfigVersion.cmake
          DESTINATION ${_smic_cmake_dir})
endif()
