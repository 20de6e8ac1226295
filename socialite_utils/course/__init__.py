"""The course: student copies of the notebooks and a static site of a run's executed notebooks
(``python -m socialite_utils.course``, ``build``), and the exercise checks the notebooks call (``exercises``)."""

from .build import (
    CourseError,
    build_site,
    build_student_notebooks,
    main,
    strip_solutions,
)

__all__ = [
    "build_site",
    "build_student_notebooks",
    "CourseError",
    "main",
    "strip_solutions",
]
