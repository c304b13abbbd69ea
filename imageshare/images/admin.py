from django.contrib import admin

from .models import Image, Rendition


class RenditionInline(admin.TabularInline):
    model = Rendition
    extra = 0
    readonly_fields = ("name", "format", "key", "content_type", "width", "height", "byte_size")


@admin.register(Image)
class ImageAdmin(admin.ModelAdmin):
    list_display = ("id", "owner", "status", "original_name", "width", "height", "created_at")
    list_filter = ("status",)
    search_fields = ("original_name", "owner__username")
    inlines = [RenditionInline]
