from django.contrib import admin
from django.urls import include, path
from django.views.generic import RedirectView

from console.metrics import metrics
from payments.views import nowpayments_ipn
from pgp_project.operations.views import health

urlpatterns = [
    path("webhooks/nowpayments/", nowpayments_ipn, name="nowpayments-ipn"),
    path("api/v1/", include("gateway_api.urls")),
    path("health/", health, name="health"),
    path("metrics", metrics, name="metrics"),
    path("admin/", admin.site.urls),
    # There is no public site: the address alone leads to the operator's console.
    path("", RedirectView.as_view(pattern_name="admin:index"), name="home"),
]
