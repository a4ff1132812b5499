from django.contrib import admin
from django.urls import path

from payments.views import nowpayments_ipn
from pgp_project.operations.views import health

urlpatterns = [
    path("webhooks/nowpayments/", nowpayments_ipn, name="nowpayments-ipn"),
    path("health/", health, name="health"),
    path("admin/", admin.site.urls),
]
