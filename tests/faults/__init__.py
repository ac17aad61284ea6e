"""The fault matrix of issue 13: one test per fault, each failing on the code before the fix.

Every test here holds on a loaded machine: no assertion on wall time or CPU share; slow hardware is
simulated by fakes whose delays are far longer than any deadline the code keeps.
"""
