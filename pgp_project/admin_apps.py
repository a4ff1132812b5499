"""Django's admin app with our site as its default site (see pgp_project/admin_site.py).

Its own module: an AppConfig module is imported before the models exist, the site's is not.
"""

from django.contrib.admin.apps import AdminConfig


class PgpAdminConfig(AdminConfig):
    default_site = "pgp_project.admin_site.PgpAdminSite"
